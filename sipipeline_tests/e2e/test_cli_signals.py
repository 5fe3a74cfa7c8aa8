"""`sipipeline run` stops on SIGTERM/SIGINT while model requests hang, keeping what arrived.

Before, Dagster turned the interrupt inside the model-calling step into a step retry (the step
has a retry policy), the retried step waited on the hung requests again, and the run never
stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from sipipeline_tests.support.fake_model import respond
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer
from sipipeline_tests.support.kill_helpers import journaled_samples

ANSWERED = 3
# Bounds a hang, not speed.
HANG_GUARD_S = 120


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_run_while_requests_hang(tmp_path, signum) -> None:
    journal = tmp_path / "storage" / "journal" / "llm_journal.sqlite"

    def hold_after_some(number: int, body: dict) -> str | None:
        return "hold" if number >= ANSWERED else None

    with FakeOpenAIServer(responder=respond, faults=hold_after_some) as server:
        env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"),
               "SIPIPELINE_STORAGE": str(tmp_path / "storage"),
               "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "test-key",
               "SIPIPELINE_LLM_MODEL": "fake-model",
               # One prompt per request: the faults below hold requests by number.
               "SIPIPELINE_PROMPTS_PER_REQUEST": "1"}
        child = subprocess.Popen([sys.executable, "-m", "sipipeline.cli", "run",
                                  "--num-prompts", "8"], env=env, cwd=tmp_path,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + HANG_GUARD_S
            while journaled_samples(journal) < ANSWERED or server.held_count() < 1:
                assert child.poll() is None, child.stderr.read()[-3000:]
                assert time.monotonic() < deadline, "the run made no progress"
                time.sleep(0.05)
            child.send_signal(signum)
            out, err = child.communicate(timeout=HANG_GUARD_S)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        server.release_held()
        server.wait_idle()
        paid = len(server.paid_log())
    assert child.returncode == 1, err[-3000:]
    assert "round_001 failed" in err and "interrupted" in err
    assert journaled_samples(journal) == paid == ANSWERED
