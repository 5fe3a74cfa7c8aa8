"""`sipipeline batches` lists live batches with state, counts and cost; `--cancel` cancels them."""

from __future__ import annotations

import pytest

from sipipeline.cli import main
from sipipeline.model.batch import BatchesPendingError
from sipipeline.model.types import ModelAccessError
from sipipeline_tests.support.batch_helpers import batch_client, requests_for
from sipipeline_tests.support.fake_batch_server import BatchScript, FakeBatchServer

KEY = "sk-test-key-0123456789"


def test_batches_are_listed_then_cancelled_on_request(tmp_path, monkeypatch, capsys):
    journal = tmp_path / "storage" / "journal" / "llm_journal.sqlite"
    with FakeBatchServer(scripts=[BatchScript(hold=True)]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("SIPIPELINE_LLM_MODEL", "fake-model")
        with batch_client(server.base_url, journal, wait_s=0.0) as client, \
                pytest.raises(BatchesPendingError):
            client.complete(requests_for(3), purpose="instances")
        assert main(["batches", "--storage", str(tmp_path / "storage")]) == 0
        listing = capsys.readouterr().out
        assert "batch_1" in listing and "instances" in listing
        assert "in_progress" in listing and "0/3" in listing and "<= $" in listing
        assert server.states() == ["in_progress"]
        assert main(["batches", "--storage", str(tmp_path / "storage"), "--cancel"]) == 0
        output = capsys.readouterr().out
        assert "cancelling" in output and KEY not in output + listing
        assert server.states() == ["cancelling"]
        with batch_client(server.base_url, journal) as client, \
                pytest.raises(ModelAccessError, match="cancelled"):
            client.complete(requests_for(3), purpose="instances")
        assert main(["batches", "--storage", str(tmp_path / "storage")]) == 0
        assert "no live batches" in capsys.readouterr().out


def test_no_journal_means_no_batches(tmp_path, capsys):
    assert main(["batches", "--storage", str(tmp_path / "none")]) == 0
    assert "no batches" in capsys.readouterr().out
