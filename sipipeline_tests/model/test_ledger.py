"""The budget ledger in the journal database: one budget for concurrent clients and processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sipipeline.model.journal import ResponseJournal
from sipipeline.model.ledger import BudgetExceededError, BudgetLedger
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer

#: Fourteen words of completion: with max_tokens 16 the answer costs nearly its reservation.
LONG_ANSWER = " ".join(["word"] * 14)


def test_reserve_settle_release_and_the_message(tmp_path: Path) -> None:
    ledger = BudgetLedger(str(tmp_path / "j.sqlite"), 1.0)
    first = ledger.reserve("me", 0.4)
    second = ledger.reserve("me", 0.4)
    with pytest.raises(BudgetExceededError) as caught:
        ledger.reserve("me", 0.4)
    message = str(caught.value)
    assert "spent $0.0000" in message and "reserved $0.8000" in message
    assert "budget $1.0000" in message
    ledger.settle(first, 0.1)
    ledger.release(second)
    status = ledger.status()
    assert status.spent_usd == pytest.approx(0.1) and status.reserved_usd == 0
    ledger.reserve("me", 0.85)


def test_reservations_of_a_dead_process_are_released(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    import socket

    ledger = BudgetLedger(str(tmp_path / "j.sqlite"), 1.0)
    ledger.reserve(f"{socket.gethostname()}:{dead}:abc", 0.9)
    ledger.reserve(f"{socket.gethostname()}:{os.getpid()}:abc", 0.05)
    status = ledger.status()
    assert status.reserved_usd == pytest.approx(0.05)  # the dead owner's 0.9 is free again


def test_a_journal_from_before_the_ledger_counts_as_spent(tmp_path: Path) -> None:
    path = str(tmp_path / "j.sqlite")
    journal = ResponseJournal(path)
    journal.record([], [("id", "p", "e", "m", 1, 10, 10, 0, 0.3, 0.0)])
    journal.close()
    assert BudgetLedger(path, 1.0).status().spent_usd == pytest.approx(0.3)
    assert BudgetLedger(path, 1.0).status().spent_usd == pytest.approx(0.3)  # once


CLIENT_SCRIPT = textwrap.dedent("""
    import sys
    from sipipeline.model.client import ModelClient
    from sipipeline.model.config import ModelClientConfig
    from sipipeline.model.pricing import TokenPrice
    from sipipeline.model.types import CompletionRequest, ModelAccessError, SamplingParams

    base_url, journal, name = sys.argv[1:]
    config = ModelClientConfig(base_url=base_url, model="fake-model", journal_path=journal,
                               api_key="none", price=TokenPrice(1000.0, 1000.0),
                               budget_usd=0.5, max_in_flight=2, backoff_base_s=0.01)
    params = SamplingParams(max_tokens=16)
    with ModelClient(config) as client:
        try:
            for step in range(10):  # small calls, as assets and rounds make them
                client.complete([CompletionRequest(f"{name} prompt {step} {i}", params)
                                 for i in range(4)], purpose="p")
            print("done")
        except ModelAccessError as error:
            print("stopped:", error)
""")


def test_two_processes_sharing_one_budget_never_exceed_it(tmp_path: Path) -> None:
    journal = str(tmp_path / "j.sqlite")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    with FakeOpenAIServer(responder=lambda prompt, body, index: (LONG_ANSWER, "stop"),
                          latency_s=0.01) as server:
        runs = [subprocess.Popen([sys.executable, "-c", CLIENT_SCRIPT, server.base_url,
                                  journal, name], stdout=subprocess.PIPE, text=True, env=env)
                for name in ("first", "second")]
        outputs = [run.communicate(timeout=120)[0] for run in runs]
    # Together they ask for 80 requests of about $0.018: nearly three budgets.
    assert any("stopped:" in out and "budget $0.5000" in out for out in outputs), outputs
    db = sqlite3.connect(journal)
    spent = db.execute("SELECT SUM(cost_usd) FROM calls").fetchone()[0]
    settled = db.execute("SELECT SUM(spent_usd), SUM(reserved_usd) FROM budget_ledger").fetchone()
    assert 0.3 < spent <= 0.5
    assert settled[0] == pytest.approx(spent) and settled[1] == 0
