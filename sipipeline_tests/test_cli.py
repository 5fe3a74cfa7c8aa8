"""`sipipeline run` materializes the next rounds on the persistent instance."""

import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from sipipeline.defs.partitions import bootstrap_rounds
from sipipeline.paths import ROUND_SLOT_TAG
from sipipeline_tests.defs.test_round_completion import respond_with_a_duplicate
from sipipeline_tests.support.fake_model import respond
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer


def _run_cli(tmp_path, server, *args):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"),
           "SIPIPELINE_STORAGE": str(tmp_path / "storage"),
           "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "test-key",
           "SIPIPELINE_LLM_MODEL": "fake-model"}
    return subprocess.run([sys.executable, "-m", "sipipeline.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)


def test_run_materializes_the_next_rounds_on_the_persistent_instance(tmp_path):
    with FakeOpenAIServer(responder=respond) as server:
        first = _run_cli(tmp_path, server, "run", "--rounds", "2", "--num-prompts", "2")
        assert first.returncode == 0, first.stderr[-3000:]
        assert "round_001 done" in first.stdout and "round_002 done" in first.stdout
        again = _run_cli(tmp_path, server, "run", "--num-prompts", "2")
        assert again.returncode == 0, again.stderr[-3000:]
        assert "round_003 done" in again.stdout
    for round_key in ("round_001", "round_002", "round_003"):
        assert (tmp_path / "storage" / "filtered_tasks" / f"{round_key}.parquet").is_file()
    with dg.DagsterInstance.local_temp(tempdir=str(tmp_path / "home")) as instance:
        runs = instance.get_runs()
        assert len(runs) == 3 and all(r.is_success for r in runs)
        assert {r.tags.get("dagster/partition") for r in runs} == {
            "round_001", "round_002", "round_003"}
        assert all(r.tags.get(ROUND_SLOT_TAG) == "bootstrap" for r in runs)
        # The instance the CLI set up admits one round run at a time from its queue.
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert {"key": ROUND_SLOT_TAG, "limit": 1} in limits
        record = instance.get_latest_materialization_event(dg.AssetKey("filtered_tasks"))
        assert record is not None


def failure_line(stderr: str) -> str:
    """The CLI's own one-line reason (Dagster's logs go to stderr too)."""
    [line] = [line for line in stderr.splitlines() if line.startswith("sipipeline: round_")
              and " failed (run " in line]
    return line


def test_run_without_a_seed_file_reports_it(tmp_path):
    with FakeOpenAIServer(responder=respond) as server:
        result = _run_cli(tmp_path, server, "run", "--seed-file", str(tmp_path / "none.jsonl"))
    assert result.returncode == 1
    line = failure_line(result.stderr)
    missing = tmp_path / "none.jsonl"
    assert line.endswith(f"seed_pool: SeedFileError: {missing}: seed file not found")
    assert server.request_log == []


def test_a_round_whose_blocking_check_failed_is_run_again_not_built_upon(tmp_path):
    with FakeOpenAIServer(responder=respond_with_a_duplicate) as server:
        failed = _run_cli(tmp_path, server, "run", "--num-prompts", "2")
        assert failed.returncode == 1
        line = failure_line(failed.stderr)
        assert "filtered_tasks_checks: DagsterAssetCheckFailedError: 1 blocking asset check" in line
        assert line.endswith("filtered_tasks: no_duplicate_instructions")
        server.responder = respond  # a new seed, so the journaled duplicates are not replayed
        again = _run_cli(tmp_path, server, "run", "--num-prompts", "2", "--random-seed", "1")
        assert again.returncode == 0, again.stderr[-3000:]
        assert "materializing round_001" in again.stdout and "round_001 done" in again.stdout
    with dg.DagsterInstance.local_temp(tempdir=str(tmp_path / "home")) as instance:
        runs = instance.get_runs()  # newest first
        assert [r.tags["dagster/partition"] for r in runs] == ["round_001", "round_001"]
        assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS,
                                            dg.DagsterRunStatus.FAILURE]
        assert list(instance.get_dynamic_partitions(bootstrap_rounds.name)) == [
            "round_001", "round_002"]


SEED = {"id": "a", "name": "a", "instruction": "Do a thing well.",
        "instances": [{"input": "", "output": "done"}], "is_classification": False}


def _seed_line(**changes) -> bytes:
    return json.dumps(SEED | changes).encode("utf-8") + b"\n"


def _defective_seed_file(tmp_path, defect: str):
    path = tmp_path / "seeds.jsonl"
    if defect == "directory":
        path.mkdir()
    elif defect == "not_utf8":
        path.write_bytes(_seed_line() + _seed_line(id="b", instruction="Say caf\xe9.")
                         .replace(b"caf\\u00e9", b"caf\xe9"))
    elif defect == "line_too_long":
        path.write_bytes(_seed_line() + _seed_line(id="b", instruction="x" * 2_000_000))
    elif defect == "same_instruction":
        path.write_bytes(_seed_line() + _seed_line(id="b", instruction="DO a thing well"))
    return path


@pytest.mark.parametrize(("defect", "reason"), [
    ("directory", "{path}: is a directory"),
    ("not_utf8", "{path}:2: not UTF-8 text"),
    ("line_too_long", "{path}:2: line longer than the"),
    ("same_instruction", "{path}:2: the instruction of 'b' duplicates that of 'a' on line 1"),
])
def test_a_defective_seed_file_stops_the_round_before_any_model_call(tmp_path, defect, reason):
    path = _defective_seed_file(tmp_path, defect)
    with FakeOpenAIServer(responder=respond) as server:
        result = _run_cli(tmp_path, server, "run", "--seed-file", str(path))
    assert result.returncode == 1
    assert f"seed_pool: SeedFileError: {reason.format(path=path)}" in failure_line(result.stderr)
    assert server.request_log == []


def test_a_bad_run_config_is_refused_before_any_run(tmp_path):
    with FakeOpenAIServer(responder=respond) as server:
        result = _run_cli(tmp_path, server, "run", "--num-prompts", "0")
    assert result.returncode == 2
    assert ("sipipeline: invalid run config: ops.generated_instructions.config: invalid "
            "GenerationConfig: num_prompts=0: Input should be greater than or equal to 1"
            ) in result.stderr
    assert "Traceback" not in result.stderr
    assert server.request_log == []
    assert not (tmp_path / "home").exists()
