"""The human review round trip: `sipipeline review export`, annotations (by hand-made export
and through a real Label Studio on 127.0.0.1), `sipipeline review import` into `human_review`,
with the agreement between people and the judge."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from sipipeline.method import quality
from sipipeline.method.review import QUESTIONS
from sipipeline.reporting import label_studio as ls
from sipipeline_tests.support.fake_judge import judge_and_model
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer
from sipipeline_tests.support.label_studio_server import (
    BIN_ENV,
    LabelStudioServer,
    find_label_studio,
)
from sipipeline_tests.support.round_harness import RoundJobHarness

JUDGE_ENVS = ("SIPIPELINE_JUDGE_BASE_URL", "SIPIPELINE_JUDGE_API_KEY", "SIPIPELINE_JUDGE_MODEL")


@pytest.fixture(scope="module")
def round_with_review(tmp_path_factory):
    """Round 1 and its judge review on a persistent instance the CLI can open."""
    root = tmp_path_factory.mktemp("roundtrip")
    with pytest.MonkeyPatch.context() as patch, \
            FakeOpenAIServer(responder=judge_and_model) as server:
        for name in JUDGE_ENVS:
            patch.delenv(name, raising=False)
        harness = RoundJobHarness(root / "home", root / "storage", server)
        assert harness.run_round(1, num_prompts=4).success
        job = harness.defs.resolve_implicit_global_asset_job_def()
        assert job.execute_in_process(asset_selection=[dg.AssetKey("quality_review")],
                                      partition_key="round_001",
                                      instance=harness.instance).success
        yield harness, root
        harness.close()


def run_cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSTER_HOME": str(root / "home"),
           "SIPIPELINE_STORAGE": str(root / "storage")}
    for name in (*JUDGE_ENVS, "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "sipipeline.cli", *args], env=env, cwd=root,
                          capture_output=True, text=True, timeout=600)


def person(record_id: str) -> dict[str, str]:
    """A scripted annotator: answers derived from the record id."""
    digest = hashlib.sha256(record_id.encode()).digest()
    return {str(q): ("yes" if digest[i] % 3 else "no") for i, q in enumerate(QUESTIONS)}


def choices(answers: dict[str, str], rating: str) -> list[dict]:
    result = [{"from_name": name, "to_name": "output", "type": "choices",
               "value": {"choices": [value]}} for name, value in answers.items()]
    result.append({"from_name": ls.RATING, "to_name": "output", "type": "choices",
                   "value": {"choices": [rating]}})
    return result


def expected_kappa(judge: pd.DataFrame, question: str) -> tuple[int, float]:
    pairs = [(person(r.record_id)[question] == "yes", bool(getattr(r, question)))
             for r in judge.itertuples() if not pd.isna(getattr(r, question))]
    return len(pairs), quality.cohen_kappa([h for h, _ in pairs], [j for _, j in pairs])


def check_imported(harness: RoundJobHarness, judge: pd.DataFrame, output: str) -> None:
    human = harness.read("human_review", 1)
    assert sorted(human["record_id"]) == sorted(judge["record_id"])
    for row in human.itertuples():
        for question in QUESTIONS:
            assert getattr(row, str(question)) == (person(row.record_id)[question] == "yes")
    records = harness.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("human_review"),
                              asset_partitions=["round_001"]), limit=1).records
    metadata = records[0].asset_materialization.metadata
    for question in QUESTIONS:
        pairs, kappa = expected_kappa(judge, str(question))
        stored = metadata[f"agreement/{question}/kappa"].value
        assert (stored != stored and kappa != kappa) or stored == pytest.approx(kappa)
        assert f"| {question} | {pairs} |" in metadata["agreement"].value
    assert "Agreement with the judge" in output and "Cohen's kappa" in output


def test_export_then_import_a_label_studio_export(round_with_review, tmp_path):
    harness, root = round_with_review
    exported = run_cli(root, "review", "export", "--out", str(tmp_path / "set"))
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert "the judge's sample" in exported.stdout
    tasks = json.loads((tmp_path / "set" / ls.TASKS_FILE).read_text())
    judge = harness.read("quality_review", 1)
    assert sorted(t["data"]["record_id"] for t in tasks) == sorted(judge["record_id"])
    export = [{"id": i, "data": t["data"], "annotations": [
        {"id": i, "completed_by": 1, "was_cancelled": False,
         "result": choices(person(t["data"]["record_id"]), "B")}]}
        for i, t in enumerate(tasks, 1)]
    export_file = tmp_path / "export.json"
    export_file.write_text(json.dumps(export))
    imported = run_cli(root, "review", "import", str(export_file))
    assert imported.returncode == 0, imported.stderr[-3000:]
    check_imported(harness, judge, imported.stdout)


def test_export_samples_afresh_when_asked_and_refuses_unknown_rounds(round_with_review,
                                                                   tmp_path):
    _, root = round_with_review
    fresh = run_cli(root, "review", "export", "--out", str(tmp_path / "fresh"),
                    "--round", "round_001", "--sample-size", "2", "--seed", "5")
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert "a new sample (size 2, seed 5)" in fresh.stdout
    assert len(json.loads((tmp_path / "fresh" / ls.TASKS_FILE).read_text())) == 2
    missing = run_cli(root, "review", "export", "--out", str(tmp_path / "x"),
                      "--round", "round_009")
    assert missing.returncode == 1 and "round_009" in missing.stderr


def test_import_refuses_a_foreign_file(round_with_review, tmp_path):
    _, root = round_with_review
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps([{"id": 1, "data": {"text": "hello"}, "annotations": []}]))
    result = run_cli(root, "review", "import", str(foreign))
    assert result.returncode == 1
    assert "not a task of a sipipeline review set" in result.stderr


def test_round_trip_through_a_real_label_studio(round_with_review, tmp_path):
    binary = find_label_studio()
    if binary is None:
        reason = (f"label-studio is not installed (set {BIN_ENV}, put label-studio on PATH, "
                  "or `python -m venv .venv-ls && .venv-ls/bin/pip install label-studio`)")
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    harness, root = round_with_review
    exported = run_cli(root, "review", "export", "--out", str(tmp_path / "set"))
    assert exported.returncode == 0, exported.stderr[-3000:]
    config = (tmp_path / "set" / ls.CONFIG_FILE).read_text()
    tasks = json.loads((tmp_path / "set" / ls.TASKS_FILE).read_text())
    with LabelStudioServer(binary, tmp_path / "label-studio") as server:
        project = server.create_project("sipipeline review round_001", config)
        server.import_tasks(project, tasks)
        stored = server.tasks(project)
        assert len(stored) == len(tasks)
        for task in stored:
            server.annotate(task["id"], choices(person(task["data"]["record_id"]), "A"))
        export = server.export_json(project)
    assert all(task["annotations"] for task in export)
    export_file = tmp_path / "label_studio_export.json"
    export_file.write_text(json.dumps(export))
    imported = run_cli(root, "review", "import", str(export_file))
    assert imported.returncode == 0, imported.stderr[-3000:]
    judge = harness.read("quality_review", 1)
    check_imported(harness, judge, imported.stdout)
    assert set(harness.read("human_review", 1)["rating"]) == {"A"}
    latest = harness.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("human_review"),
                              asset_partitions=["round_001"]), limit=1).records[0]
    ratings = latest.asset_materialization.metadata["ratings"].value
    assert ratings == {"A": len(judge), "B": 0, "C": 0, "D": 0}
