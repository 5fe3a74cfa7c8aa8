"""A round killed with SIGKILL mid-way and run again pays for each request once.

`sipipeline run` materializes round 1 in a subprocess against the fake model; the server answers
the first requests (all of instruction generation and part of classification) and then holds
the rest, so the kill lands inside a model-calling asset with requests in flight. Running the
round again must re-send only what was never answered, and produce exactly the pool an
uninterrupted run produces.
"""

from __future__ import annotations

import collections
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from sipipeline.io import read_parquet
from sipipeline_tests.fake_model import respond
from sipipeline_tests.fake_openai_server import FakeOpenAIServer

NUM_PROMPTS = 4
ANSWERED_BEFORE_KILL = NUM_PROMPTS + 5


def _env(tmp: Path, server: FakeOpenAIServer) -> dict[str, str]:
    return {**os.environ, "DAGSTER_HOME": str(tmp / "home"),
            "SIPIPELINE_STORAGE": str(tmp / "storage"), "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": "test-key", "SIPIPELINE_LLM_MODEL": "fake-model"}


def _command() -> list[str]:
    return [sys.executable, "-m", "sipipeline.cli", "run", "--num-prompts", str(NUM_PROMPTS)]


def _journaled(journal: Path) -> int:
    try:
        with sqlite3.connect(journal, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def _pool(tmp: Path):
    return read_parquet(tmp / "storage" / "filtered_tasks" / "round_001.parquet")


def test_a_killed_round_resumes_from_the_journal(tmp_path: Path) -> None:
    killed = tmp_path / "killed"
    journal = killed / "storage" / "journal" / "llm_journal.sqlite"

    def hold_after_some(number: int, body: dict) -> str | None:
        return "hold" if number >= ANSWERED_BEFORE_KILL else None

    with FakeOpenAIServer(responder=respond, faults=hold_after_some) as server:
        child = subprocess.Popen(_command(), env=_env(killed, server), cwd=tmp_path,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 180
            while _journaled(journal) < ANSWERED_BEFORE_KILL or server.held_count() < 1:
                assert child.poll() is None, child.stderr.read().decode()[-3000:]
                assert time.monotonic() < deadline, "the round made no progress"
                time.sleep(0.05)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            child.stderr.close()
        assert child.returncode == -signal.SIGKILL
        assert not (killed / "storage" / "filtered_tasks" / "round_001.parquet").exists()
        server.release_held()  # the held requests find their client gone: never delivered
        assert server.wait_idle()
        assert len(server.paid_log()) == ANSWERED_BEFORE_KILL

        server.set_faults(None)
        rerun = subprocess.run(_command(), env=_env(killed, server), cwd=tmp_path,
                               capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert "round_001 done" in rerun.stdout
        server.wait_idle()
        paid = collections.Counter(server.request_identity(e) for e in server.paid_log())
        assert set(paid.values()) == {1}, "a request that had been answered was sent again"

    fresh = tmp_path / "fresh"
    with FakeOpenAIServer(responder=respond) as fresh_server:
        uninterrupted = subprocess.run(_command(), env=_env(fresh, fresh_server), cwd=tmp_path,
                                       capture_output=True, text=True, timeout=300)
        assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
        assert len(fresh_server.paid_log()) == len(paid)
    assert _pool(killed).equals(_pool(fresh))
