"""Batch delivery against the fake Batch API: same answers as online, half the price, and every
failure shape (404 after upload, failed, expired, error lines, omitted lines, cancel)."""

from __future__ import annotations

import sqlite3

import pytest

from sipipeline.model.batch import BatchesPendingError
from sipipeline.model.batch_manifest import Phase
from sipipeline.model.types import ModelAccessError
from sipipeline_tests.support.batch_helpers import (
    batch_client,
    online_texts,
    requests_for,
    texts,
)
from sipipeline_tests.support.fake_batch_server import (
    TOKEN_LIMIT_ERROR,
    BatchScript,
    FakeBatchServer,
)

PURPOSE = "generated_instructions"


def test_a_batch_round_trip_matches_online_at_half_the_cost(tmp_path):
    requests = requests_for(6, n=2)
    online_journal = tmp_path / "online.sqlite"
    expected = online_texts(requests, online_journal)
    log: list[str] = []
    with FakeBatchServer() as server, batch_client(server.base_url, tmp_path / "j.sqlite",
                                                   log=log) as client:
        got = client.complete(requests, purpose=PURPOSE)
        usage = client.usage(PURPOSE)
        online_usd = client.online_equivalent_usd(PURPOSE)
        progress = client.batch_progress(PURPOSE)
    assert texts(got) == expected
    assert set(server.submitted.values()) == {1} and len(server.submitted) == 6
    with sqlite3.connect(online_journal) as db:
        online_cost = db.execute("SELECT SUM(cost_usd) FROM calls").fetchone()[0]
    assert usage.cost_usd == pytest.approx(online_cost / 2)
    assert online_usd == pytest.approx(online_cost)
    assert usage.samples == 12
    assert progress["requests_done"] == progress["requests_total"] == 12
    joined = "\n".join(log)
    for state in ("in_progress", "finalizing", "completed"):
        assert f" {state} " in joined or f" {state}:" in joined, joined


def test_the_journal_answers_a_second_call_without_any_batch(tmp_path):
    requests = requests_for(3)
    with FakeBatchServer() as server:
        with batch_client(server.base_url, tmp_path / "j.sqlite") as client:
            first = client.complete(requests, purpose=PURPOSE)
        with batch_client(server.base_url, tmp_path / "j.sqlite") as client:
            second = client.complete(requests, purpose=PURPOSE)
            assert client.usage(PURPOSE).journal_hits == 3
    assert texts(first) == texts(second)
    assert len(server.batches) == 1


def test_a_file_unknown_right_after_upload_is_retried(tmp_path):
    requests = requests_for(3)
    with FakeBatchServer(not_found_after_upload=2) as server, batch_client(
            server.base_url, tmp_path / "j.sqlite") as client:
        got = client.complete(requests, purpose=PURPOSE)
    assert texts(got) == online_texts(requests, tmp_path / "online.sqlite")
    assert len(server.batches) == 1 and len(server.files) == 2  # input + output


def test_a_failed_batch_reports_its_errors_and_the_next_call_sends_again(tmp_path):
    requests = requests_for(4)
    failing = BatchScript(end="failed", errors=[TOKEN_LIMIT_ERROR])
    with FakeBatchServer(scripts=[failing]) as server:
        with batch_client(server.base_url, tmp_path / "j.sqlite") as client, \
                pytest.raises(ModelAccessError) as raised:
            client.complete(requests, purpose=PURPOSE)
        assert "token_limit_exceeded" in str(raised.value)
        assert "Enqueued token limit" in str(raised.value)
        with batch_client(server.base_url, tmp_path / "j.sqlite") as client:
            got = client.complete(requests, purpose=PURPOSE)
    assert texts(got) == online_texts(requests, tmp_path / "online.sqlite")
    assert set(server.submitted.values()) == {2}  # the failed batch ran nothing


@pytest.mark.parametrize("unfinished_as_errors", [False, True])
def test_an_expired_batch_keeps_its_output_and_only_the_missing_are_sent_again(
        tmp_path, unfinished_as_errors):
    requests = requests_for(8)
    expiring = BatchScript(end="expired", answered_fraction=0.5,
                           unfinished_as_errors=unfinished_as_errors)
    with FakeBatchServer(scripts=[expiring]) as server, batch_client(
            server.base_url, tmp_path / "j.sqlite") as client:
        got = client.complete(requests, purpose=PURPOSE)
    assert texts(got) == online_texts(requests, tmp_path / "online.sqlite")
    assert server.states() == ["expired", "completed"]
    second = list(server.batches.values())[1]
    assert len(second.lines) == 4
    assert sorted(server.submitted.values()) == [1] * 4 + [2] * 4


def test_error_lines_are_retried_then_recorded_as_failed(tmp_path):
    requests = requests_for(3)
    with FakeBatchServer(scripts=[BatchScript(error_lines=[1])]) as server, batch_client(
            server.base_url, tmp_path / "j.sqlite") as client:
        got = client.complete(requests, purpose=PURPOSE)
    assert texts(got) == online_texts(requests, tmp_path / "online2.sqlite")
    assert sorted(server.submitted.values()) == [1, 1, 2]

    always = [BatchScript(error_lines=[0])] * 3
    with FakeBatchServer(scripts=list(always)) as server, batch_client(
            server.base_url, tmp_path / "k.sqlite", max_retries=1) as client, \
            pytest.raises(ModelAccessError) as raised:
        client.complete(requests_for(1), purpose=PURPOSE)
    assert "failed after 2 attempts" in str(raised.value)
    assert "The server had an error" in str(raised.value)
    assert len(server.batches) == 2


def test_output_that_omits_a_request_is_reconciled_and_sent_again(tmp_path):
    requests = requests_for(5)
    with FakeBatchServer(scripts=[BatchScript(omitted_lines=[0, 3])]) as server, batch_client(
            server.base_url, tmp_path / "j.sqlite") as client:
        got = client.complete(requests, purpose=PURPOSE)
    assert texts(got) == online_texts(requests, tmp_path / "online.sqlite")
    assert len(list(server.batches.values())[1].lines) == 2


def test_pending_batches_end_the_call_and_a_later_call_collects_them(tmp_path):
    requests = requests_for(4)
    journal = tmp_path / "j.sqlite"
    with FakeBatchServer(scripts=[BatchScript(hold=True)]) as server:
        with batch_client(server.base_url, journal, wait_s=0.0) as client, \
                pytest.raises(BatchesPendingError) as raised:
            client.complete(requests, purpose=PURPOSE)
        assert "batches pending" in str(raised.value)
        assert raised.value.progress["requests_done"] == 0
        assert raised.value.progress["by_state"] == {"in_progress": 4}
        with batch_client(server.base_url, journal, wait_s=0.0) as client, \
                pytest.raises(BatchesPendingError):
            client.complete(requests, purpose=PURPOSE)
        server.release_batches()
        with batch_client(server.base_url, journal, wait_s=0.0) as client:
            got = client.complete(requests, purpose=PURPOSE)
    assert texts(got) == online_texts(requests, tmp_path / "online.sqlite")
    assert set(server.submitted.values()) == {1}


@pytest.mark.parametrize("unfinished_as_errors", [False, True])
def test_a_cancelled_batch_is_honoured_not_resubmitted_in_the_same_call(tmp_path,
                                                                        unfinished_as_errors):
    requests = requests_for(3)
    journal = tmp_path / "j.sqlite"
    script = BatchScript(hold=True, unfinished_as_errors=unfinished_as_errors)
    with FakeBatchServer(scripts=[script]) as server:
        with batch_client(server.base_url, journal, wait_s=0.0) as client:
            with pytest.raises(BatchesPendingError):
                client.complete(requests, purpose=PURPOSE)
            (row,) = client.manifest.batches(live_only=True)
            client.api.cancel(row.batch_id)
            with pytest.raises(ModelAccessError) as raised:
                client.complete(requests, purpose=PURPOSE)
            assert "cancelled" in str(raised.value)
            assert client.manifest.batches()[0].phase == Phase.RECONCILED
        assert len(server.batches) == 1
        with batch_client(server.base_url, journal) as client:
            got = client.complete(requests, purpose=PURPOSE)
    assert texts(got) == online_texts(requests, tmp_path / "online.sqlite")


def test_chat_mode_sends_chat_bodies(tmp_path):
    requests = requests_for(2)
    with FakeBatchServer() as server, batch_client(server.base_url, tmp_path / "j.sqlite",
                                                   api="chat") as client:
        got = client.complete(requests, purpose=PURPOSE)
    (batch,) = server.batches.values()
    assert batch.data["endpoint"] == "/v1/chat/completions"
    assert all(line["body"]["messages"][1]["role"] == "user" for line in batch.lines)
    assert texts(got) == online_texts(requests, tmp_path / "online.sqlite", api="chat")


def test_the_budget_counts_batch_tokens_at_half_price(tmp_path):
    requests = requests_for(4)
    with FakeBatchServer() as server, batch_client(
            server.base_url, tmp_path / "j.sqlite", budget_usd=0.0001) as client, \
            pytest.raises(ModelAccessError, match="budget"):
        client.complete(requests, purpose=PURPOSE)
    assert not server.batches


def test_a_budget_that_covers_half_the_online_price_is_enough(tmp_path):
    from sipipeline.model.pricing import cost_usd, estimate_prompt_tokens
    from sipipeline_tests.support.batch_helpers import PRICE

    requests = requests_for(4)
    online_worst = sum(cost_usd(PRICE, estimate_prompt_tokens(r.prompt), r.params.max_tokens)
                       for r in requests)
    with FakeBatchServer() as server, batch_client(
            server.base_url, tmp_path / "j.sqlite", budget_usd=online_worst * 0.6) as client:
        assert len(client.complete(requests, purpose=PURPOSE)) == 4


def test_a_batch_another_live_client_is_moving_on_is_left_to_it(tmp_path):
    requests = requests_for(3)
    journal = tmp_path / "j.sqlite"
    with FakeBatchServer() as server:
        first = batch_client(server.base_url, journal, wait_s=0.0)
        first._advance = lambda purpose, state: None  # prepared, then "busy uploading"
        with pytest.raises(BatchesPendingError):
            first.complete(requests, purpose=PURPOSE)
        with batch_client(server.base_url, journal, wait_s=0.0) as second:
            with pytest.raises(BatchesPendingError):
                second.complete(requests, purpose=PURPOSE)
            assert not server.files  # neither uploaded again nor prepared again
            assert len(second.manifest.batches()) == 1
            first.close()  # its claims end with it
        with batch_client(server.base_url, journal) as third:
            got = third.complete(requests, purpose=PURPOSE)
    assert texts(got) == online_texts(requests, tmp_path / "online.sqlite")
    assert set(server.submitted.values()) == {1}


def test_a_request_the_output_keeps_omitting_fails_within_the_retry_budget(tmp_path):
    scripts = [BatchScript(omitted_lines=[0]) for _ in range(5)]
    with FakeBatchServer(scripts=scripts) as server, batch_client(
            server.base_url, tmp_path / "j.sqlite", max_retries=2) as client, \
            pytest.raises(ModelAccessError, match="failed after 3 attempts: no output line"):
        client.complete(requests_for(1), purpose=PURPOSE)
    assert len(server.batches) == 3


def test_requests_beyond_a_files_limit_go_in_several_batches(tmp_path, monkeypatch):
    import sipipeline.model.batch as batch_module

    monkeypatch.setattr(batch_module, "MAX_REQUESTS_PER_FILE", 2)
    requests = requests_for(5)
    with FakeBatchServer() as server, batch_client(server.base_url,
                                                   tmp_path / "j.sqlite") as client:
        got = client.complete(requests, purpose=PURPOSE)
    assert [len(b.lines) for b in server.batches.values()] == [2, 2, 1]
    assert texts(got) == online_texts(requests, tmp_path / "online.sqlite")


def test_no_secret_reaches_the_manifest_the_log_or_an_error(tmp_path):
    log: list[str] = []
    journal = tmp_path / "j.sqlite"
    failing = BatchScript(end="failed", errors=[TOKEN_LIMIT_ERROR])
    with FakeBatchServer(scripts=[failing]) as server, batch_client(
            server.base_url, journal, log=log) as client, \
            pytest.raises(ModelAccessError) as raised:
        client.complete(requests_for(2), purpose=PURPOSE)
    key = "sk-test-key-0123456789"
    assert key not in str(raised.value) and key not in "\n".join(log)
    for path in tmp_path.glob("j.sqlite*"):
        assert key.encode() not in path.read_bytes()


def test_an_endpoint_refusing_max_tokens_is_asked_with_max_completion_tokens(tmp_path):
    requests = requests_for(3)
    with FakeBatchServer(reject_max_tokens=True) as server, batch_client(
            server.base_url, tmp_path / "j.sqlite") as client:
        got = client.complete(requests, purpose=PURPOSE)
    first, second = server.batches.values()
    assert all("max_tokens" in line["body"] for line in first.lines)
    assert all("max_completion_tokens" in line["body"] and "max_tokens" not in line["body"]
               for line in second.lines)
    assert texts(got) == online_texts(requests, tmp_path / "online.sqlite")
