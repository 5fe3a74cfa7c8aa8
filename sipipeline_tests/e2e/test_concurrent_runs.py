"""One round at a time: two `sipipeline run` started together on one DAGSTER_HOME, and a CLI
run while a round run is queued from elsewhere (UI, sensor).

The fake server holds every completion request until the test releases it, so the first
starter is still paying for round_001 when the second one decides what to do. Request counts
come from the server.
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
from dagster._core.test_utils import create_run_for_test

from sipipeline.defs.partitions import bootstrap_rounds
from sipipeline.paths import ROUND_SLOT_TAG
from sipipeline_tests.e2e.test_kill_round import cli_env
from sipipeline_tests.support.fake_model import respond
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer

NUM_PROMPTS = 4
BUSY = 3


def start(root: Path, server: FakeOpenAIServer) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sipipeline.cli", "run", "--num-prompts", str(NUM_PROMPTS)],
        env=cli_env(root, server), cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def wait_until(ready, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.05)


def test_two_runs_started_together_pay_each_request_once(tmp_path: Path) -> None:
    with FakeOpenAIServer(responder=respond, faults=lambda number, body: "hold") as server:
        children = [start(tmp_path, server), start(tmp_path, server)]
        try:
            # Either one starter gives up, or (the bug) both end up waiting on the model.
            wait_until(lambda: any(c.poll() is not None for c in children)
                       or server.held_count() >= 2 * NUM_PROMPTS)
            server.release_held()
            outputs = [child.communicate(timeout=300) for child in children]
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        codes = sorted(child.returncode for child in children)
        assert codes == [0, BUSY], outputs
        (winner_out, _), (_, loser_err) = sorted(
            outputs, key=lambda o: "round_001 done" not in o[0])
        assert "round_001 done" in winner_out
        run_id = re.search(r"materializing round_001 in run (\S+)", winner_out).group(1)
        assert "not starting: another `sipipeline run` is running a round" in loser_err
        assert f"run {run_id}" in loser_err
        assert "Traceback" not in loser_err

        server.wait_idle()
        paid = collections.Counter(server.request_identity(e) for e in server.paid_log())
        assert paid and set(paid.values()) == {1}, "a request was paid twice"

        third = subprocess.run(
            [sys.executable, "-m", "sipipeline.cli", "run", "--num-prompts", str(NUM_PROMPTS)],
            env=cli_env(tmp_path, server), cwd=tmp_path, capture_output=True, text=True,
            timeout=300)
        assert third.returncode == 0, third.stderr[-3000:]
        assert "round_002 done" in third.stdout

    with dg.DagsterInstance.local_temp(tempdir=str(tmp_path / "home")) as instance:
        runs = instance.get_runs()
        assert sorted(r.tags["dagster/partition"] for r in runs) == ["round_001", "round_002"]
        assert all(r.is_success for r in runs)


def test_a_cli_run_refuses_while_a_round_runs_elsewhere(tmp_path: Path) -> None:
    """A round launched from the UI or by the sensor (not by a `sipipeline run`)."""
    home = tmp_path / "home"
    home.mkdir()
    with dg.DagsterInstance.local_temp(tempdir=str(home)) as instance:
        instance.add_dynamic_partitions(bootstrap_rounds.name, ["round_001"])
        running = create_run_for_test(
            instance, job_name="bootstrap_round_job", status=dg.DagsterRunStatus.STARTED,
            tags={"dagster/partition": "round_001", ROUND_SLOT_TAG: "bootstrap"})
    with FakeOpenAIServer(responder=respond) as server:
        result = subprocess.run(
            [sys.executable, "-m", "sipipeline.cli", "run", "--num-prompts", "2"],
            env=cli_env(tmp_path, server), cwd=tmp_path, capture_output=True, text=True,
            timeout=300)
        assert server.completion_log() == []
    assert result.returncode == BUSY
    assert f"round_001 (started, run {running.run_id})" in result.stderr
    assert "Traceback" not in result.stderr
    with dg.DagsterInstance.local_temp(tempdir=str(home)) as instance:
        assert instance.get_run_by_id(running.run_id).status == dg.DagsterRunStatus.STARTED
