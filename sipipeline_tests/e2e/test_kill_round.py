"""A round killed with SIGKILL mid-way and run again: nothing paid for is asked for twice.

`sipipeline run` (a real Dagster run of one round, in a subprocess) sends its instruction
generation requests to the fake server, which answers some and holds the rest; the process is
killed while those are in flight, then the command is run again. Over both runs the server
must have delivered each distinct request once, and the round's tables must equal those of an
uninterrupted run.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from sipipeline_tests.support.fake_model import respond
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer
from sipipeline_tests.support.kill_helpers import journaled_samples, kill_when

NUM_PROMPTS = 8
ANSWERED_BEFORE_KILL = 3
ROUND_ASSETS = ("generated_instructions", "classification_labels", "instances",
                "filtered_tasks")


def cli_env(root: Path, server: FakeOpenAIServer) -> dict[str, str]:
    return {**os.environ, "DAGSTER_HOME": str(root / "home"),
            "SIPIPELINE_STORAGE": str(root / "storage"),
            "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "test-key",
            "SIPIPELINE_LLM_MODEL": "fake-model",
            # One prompt per request: the faults below hold requests by number.
            "SIPIPELINE_PROMPTS_PER_REQUEST": "1"}


def run_command(root: Path) -> list[str]:
    return [sys.executable, "-m", "sipipeline.cli", "run", "--num-prompts", str(NUM_PROMPTS)]


def journaled(root: Path) -> int:
    return journaled_samples(root / "storage" / "journal" / "llm_journal.sqlite")


def round_tables(root: Path) -> dict[str, pd.DataFrame]:
    """The round's tables without `journal_key`: it names the journal row, and the journal key
    includes the endpoint, whose port differs between the two fake servers."""
    tables = {name: pd.read_parquet(root / "storage" / name / "round_001.parquet")
              for name in ROUND_ASSETS}
    return {name: table.drop(columns=["journal_key"], errors="ignore")
            for name, table in tables.items()}


def test_killed_round_resumes_without_paying_twice(tmp_path: Path) -> None:
    killed_root, clean_root = tmp_path / "killed", tmp_path / "clean"
    for root in (killed_root, clean_root):
        root.mkdir()

    def hold_after_some(number: int, body: dict) -> str | None:
        return "hold" if number >= ANSWERED_BEFORE_KILL else None

    with FakeOpenAIServer(responder=respond, faults=hold_after_some) as server:
        child = subprocess.Popen(run_command(killed_root), env=cli_env(killed_root, server),
                                 cwd=killed_root, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
        kill_when(child, lambda: (journaled(killed_root) >= ANSWERED_BEFORE_KILL
                                  and server.held_count() >= NUM_PROMPTS - ANSWERED_BEFORE_KILL),
                  timeout_s=120)
        server.release_held()
        assert server.wait_idle()
        assert len(server.paid_log()) == ANSWERED_BEFORE_KILL

        again = subprocess.run(run_command(killed_root), env=cli_env(killed_root, server),
                               cwd=killed_root, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "round_001 done" in again.stdout
        server.wait_idle()
        paid = collections.Counter(server.request_identity(e) for e in server.paid_log())
        assert set(paid.values()) == {1}, "a paid request was sent again after the kill"
        distinct_requests = len(paid)

    with FakeOpenAIServer(responder=respond) as clean_server:
        clean = subprocess.run(run_command(clean_root), env=cli_env(clean_root, clean_server),
                               cwd=clean_root, capture_output=True, text=True, timeout=300)
        assert clean.returncode == 0, clean.stderr[-3000:]
        assert len(clean_server.paid_log()) == distinct_requests

    resumed_tables, clean_tables = round_tables(killed_root), round_tables(clean_root)
    for name in ROUND_ASSETS:
        pd.testing.assert_frame_equal(resumed_tables[name], clean_tables[name], obj=name)
