"""`sipipeline run` in batch delivery, SIGKILLed at a batch phase, then run again: every
request reaches a batch once, and the round's tables equal an online round's.

Killed while `POST /batches` is answered (the batch exists, its id was never recorded) and
while an output file downloads: the two moments where a careless resume pays twice or loses
answers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from sipipeline_tests.support.fake_batch_server import FakeBatchServer
from sipipeline_tests.support.fake_model import respond
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer
from sipipeline_tests.support.kill_helpers import kill_when

NUM_PROMPTS = 4
ROUND_ASSETS = ("generated_instructions", "classification_labels", "instances",
                "filtered_tasks")
COMMAND = [sys.executable, "-m", "sipipeline.cli", "run", "--num-prompts", str(NUM_PROMPTS)]


def cli_env(root: Path, base_url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "DAGSTER_HOME": str(root / "home"),
            "SIPIPELINE_STORAGE": str(root / "storage"), "OPENAI_BASE_URL": base_url,
            "OPENAI_API_KEY": "test-key", "SIPIPELINE_LLM_MODEL": "fake-model", **extra}


def batch_env(root: Path, base_url: str) -> dict[str, str]:
    return cli_env(root, base_url, SIPIPELINE_LLM_DELIVERY="batch",
                   SIPIPELINE_LLM_BATCH_POLL_S="0.05", SIPIPELINE_LLM_BATCH_WAIT_S="300")


def round_tables(root: Path) -> dict[str, pd.DataFrame]:
    """Round 1's tables without `journal_key`, which names the journal row (its key includes
    the endpoint, and the online and batch runs here talk to two fake endpoints)."""
    return {name: pd.read_parquet(root / "storage" / name / "round_001.parquet")
            .drop(columns=["journal_key"], errors="ignore") for name in ROUND_ASSETS}


def test_a_killed_batch_round_resumes_without_submitting_twice(tmp_path: Path) -> None:
    clean_root = tmp_path / "online"
    clean_root.mkdir()
    with FakeOpenAIServer(responder=respond) as server:
        clean = subprocess.run(COMMAND, env=cli_env(clean_root, server.base_url),
                               cwd=clean_root, capture_output=True, text=True, timeout=300)
        assert clean.returncode == 0, clean.stderr[-3000:]
    expected = round_tables(clean_root)
    for phase in ("create", "content"):
        root = tmp_path / phase
        root.mkdir()
        with FakeBatchServer(responder=respond, holds={phase}) as server:
            child = subprocess.Popen(COMMAND, env=batch_env(root, server.base_url), cwd=root,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            kill_when(child, lambda server=server: server.held >= 1, timeout_s=120)
            server.release()
            again = subprocess.run(COMMAND, env=batch_env(root, server.base_url), cwd=root,
                                   capture_output=True, text=True, timeout=300)
            assert again.returncode == 0, again.stderr[-3000:]
            assert "round_001 done" in again.stdout
            assert set(server.submitted.values()) == {1}, (phase, server.submitted)
            assert len(server.batches) == 3  # one per model-calling asset
        resumed = round_tables(root)
        for name in ROUND_ASSETS:
            pd.testing.assert_frame_equal(resumed[name], expected[name], obj=f"{phase}/{name}")
