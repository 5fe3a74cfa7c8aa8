"""ModelClient against the fake OpenAI-compatible server: faults, journal, accounting."""

from __future__ import annotations

import collections
import sqlite3
from pathlib import Path

import pytest

from sipipeline.model.config import ModelClientConfig
from sipipeline.model.pricing import TokenPrice
from sipipeline.model.types import (
    CHAT_SYSTEM_MESSAGE,
    CompletionRequest,
    ModelAccessError,
    SamplingParams,
)
from sipipeline_tests.support.client_helpers import (
    PARAMS,
    assert_no_duplicate_paid,
    expected_texts,
    make_client,
    requests_for,
)
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer, Fault, default_responder


def test_round_trip_in_order_with_n_samples(tmp_path: Path, transport: str) -> None:
    with FakeOpenAIServer() as server, \
            make_client(server, tmp_path / "j.sqlite", http_transport=transport) as client:
        batch = requests_for(10, n=3)
        results = client.complete(batch, purpose="generated_instructions")
        assert [[c.text for c in row] for row in results] == [expected_texts(r) for r in batch]
        assert all(len(row) == 3 for row in results)
        assert all(c.finish_reason == "stop" and not c.from_journal for row in results
                   for c in row)
        assert [c.sample_index for c in results[0]] == [0, 1, 2]
        assert len({c.request_key for row in results for c in row}) == 30
        # n>1 saves requests: one request per prompt.
        log = server.completion_log()
        assert len(log) == 10 and {e["body"]["n"] for e in log} == {3}
        body = log[0]["body"]
        assert body["temperature"] == 0.7 and body["top_p"] == 0.5 and body["stop"] == ["\n\n"]
        usage = client.usage("generated_instructions")
        assert usage.requests == 10 and usage.samples == 30
        assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
        assert client.usage().requests == 10
        client.complete(requests_for(2, n=1, seed=5), purpose="instances")
        by_purpose = client.usage_by_purpose()
        assert sorted(by_purpose) == ["generated_instructions", "instances"]
        assert by_purpose["instances"].requests == 2 and client.usage().requests == 12
        assert client.usage("never used").requests == 0


def test_journal_reuse_and_fresh_samples_with_new_seed(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    with FakeOpenAIServer() as server:
        with make_client(server, journal) as client:
            first = client.complete(requests_for(6), purpose="p")
        with make_client(server, journal) as client:
            again = client.complete(requests_for(6), purpose="p")
            assert client.usage("p").journal_hits == 12
            assert client.usage("p").requests == 0
            assert all(c.from_journal for row in again for c in row)
            assert [[c.text for c in r] for r in again] == [[c.text for c in r] for r in first]
            assert [[c.request_key for c in r] for r in again] == \
                [[c.request_key for c in r] for r in first]
            assert len(server.completion_log()) == 6
            # Asking for more samples of the same prompt sends only the missing ones.
            more = client.complete([CompletionRequest(requests_for(1)[0].prompt, PARAMS, n=4)],
                                   purpose="p")
            assert [c.from_journal for c in more[0]] == [True, True, False, False]
            assert server.completion_log()[-1]["body"]["n"] == 2
            # A new sampling seed is a deliberate request for fresh samples.
            fresh = client.complete(requests_for(6, seed=1), purpose="p")
            assert not any(c.from_journal for row in fresh for c in row)
            assert len(server.completion_log()) == 13


def test_faults_retried_and_no_paid_request_duplicated(tmp_path: Path, transport: str) -> None:
    faults = ["429", "500", Fault("slow", delay_s=1.0), "malformed", "truncated", None, "500",
              Fault("429", retry_after_s=0.2)]
    with FakeOpenAIServer(faults=faults) as server:
        with make_client(server, tmp_path / "j.sqlite", timeout_s=0.4, backoff_max_s=1.0,
                         http_transport=transport) as client:
            batch = requests_for(12)
            results = client.complete(batch, purpose="instances")
            usage = client.usage("instances")
        server.wait_idle()
        assert all(len(row) == 2 for row in results)
        finishes = collections.Counter(c.finish_reason for row in results for c in row)
        assert finishes == {"stop": 22, "length": 2}
        for request, row in zip(batch, results, strict=True):
            if row[0].finish_reason == "stop":
                assert [c.text for c in row] == expected_texts(request)
        assert usage.retries == 6
        log = server.completion_log()
        assert collections.Counter(e["fault"] for e in log if e["fault"]) == {
            "429": 2, "500": 2, "slow": 1, "malformed": 1, "truncated": 1}
        assert_no_duplicate_paid(server)
        assert len(server.paid_log()) == 12
        assert not any(e["paid"] for e in log if e["fault"] == "slow")


def test_retry_after_is_honoured(tmp_path: Path, transport: str) -> None:
    with FakeOpenAIServer(faults=[Fault("429", retry_after_s=0.3)]) as server:
        with make_client(server, tmp_path / "j.sqlite", max_in_flight=1, backoff_max_s=1.0,
                         http_transport=transport) as client:
            client.complete(requests_for(1), purpose="p")
        first, second = server.completion_log()
        assert first["status"] == 429 and second["status"] == 200
        assert second["time"] - first["time"] >= 0.3


def test_exhausted_retries_fail_and_keep_the_journal(tmp_path: Path, transport: str) -> None:
    journal = tmp_path / "j.sqlite"
    batch = requests_for(8)
    doomed = batch[3].prompt

    def only_doomed_fails(number: int, body: dict) -> str | None:
        return "500" if body.get("prompt") == doomed else None

    with FakeOpenAIServer(faults=only_doomed_fails) as server:
        with make_client(server, journal, max_retries=2, http_transport=transport) as client, \
                pytest.raises(ModelAccessError,
                              match=r"2 retries.*HTTP 500 \(The server had an error.\)") as caught:
            client.complete(batch, purpose="p")
        assert caught.value.retryable and caught.value.__suppress_context__
        assert sum(e["status"] == 500 for e in server.completion_log()) == 3
        server.set_faults(None)
        with make_client(server, journal, http_transport=transport) as client:
            results = client.complete(batch, purpose="p")
            usage = client.usage("p")
        # Work already done is never redone: only the failed prompt goes out again, though
        # requests after it may not have been sent before the failure stopped the run.
        assert usage.requests + usage.journal_hits / 2 == 8
        assert [[c.text for c in row] for row in results] == [expected_texts(r) for r in batch]
        assert_no_duplicate_paid(server)


def test_authentication_error_fails_fast_without_leaking_the_key(tmp_path: Path,
                                                                 transport: str) -> None:
    with FakeOpenAIServer(require_api_key="right-key") as server:
        client = make_client(server, tmp_path / "j.sqlite", api_key="sk-wrong-key-abcdef123456",
                             max_in_flight=4, http_transport=transport)
        with client, pytest.raises(ModelAccessError) as caught:
            client.complete(requests_for(50), purpose="p")
        message = str(caught.value)
        assert "401" in message and "OPENAI_API_KEY" in message and not caught.value.retryable
        assert "wrong-key" not in message and caught.value.__cause__ is None
        assert "wrong-key" not in repr(client)
        # Only the requests already in flight were sent: no retries, no further requests.
        assert len(server.completion_log()) <= 4


def test_unreachable_endpoint_is_retried_then_reported(tmp_path: Path, transport: str) -> None:
    with FakeOpenAIServer() as server, \
            make_client(server, tmp_path / "j.sqlite", max_retries=2,
                        http_transport=transport) as client:
        server.stop()  # nothing listens: connection errors are retried, then reported
        with pytest.raises(ModelAccessError, match="2 retries.*(connection error|timeout)"):
            client.complete(requests_for(1), purpose="p")


def test_bad_request_is_not_retried(tmp_path: Path, transport: str) -> None:
    with FakeOpenAIServer(faults=["400"] * 10) as server, \
            make_client(server, tmp_path / "j.sqlite", max_in_flight=1,
                        http_transport=transport) as client:
        with pytest.raises(ModelAccessError, match="HTTP 400.*context length"):
            client.complete(requests_for(3), purpose="p")
        assert len(server.completion_log()) == 1


def test_chat_mode_sends_messages_and_returns_the_continuation(tmp_path: Path,
                                                               transport: str) -> None:
    with FakeOpenAIServer() as server:
        with make_client(server, tmp_path / "j.sqlite", api="chat",
                         http_transport=transport) as client:
            batch = requests_for(3)
            results = client.complete(batch, purpose="p")
        body = server.completion_log()[0]["body"]
        assert body["messages"][0] == {"role": "system", "content": CHAT_SYSTEM_MESSAGE}
        assert body["messages"][1]["role"] == "user"
        assert body["messages"][1]["content"] in {r.prompt for r in batch}
        for request, row in zip(batch, results, strict=True):
            prompt_text = CHAT_SYSTEM_MESSAGE + "\n" + request.prompt
            assert [c.text for c in row] == [default_responder(prompt_text, {}, i)[0]
                                             for i in range(2)]


def test_chat_and_completion_journal_keys_differ(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    with FakeOpenAIServer() as server:
        with make_client(server, journal) as client:
            text_keys = [c.request_key for c in client.complete(requests_for(1), purpose="p")[0]]
        with make_client(server, journal, api="chat") as client:
            chat = client.complete(requests_for(1), purpose="p")[0]
        assert not any(c.from_journal for c in chat)
        assert not set(text_keys) & {c.request_key for c in chat}


def test_max_n_per_request_splits_samples(tmp_path: Path) -> None:
    with FakeOpenAIServer() as server:
        with make_client(server, tmp_path / "j.sqlite", max_n_per_request=2) as client:
            request = CompletionRequest("one prompt", PARAMS, n=5)
            (row,) = client.complete([request], purpose="p")
        assert sorted(e["body"].get("n", 1) for e in server.completion_log()) == [1, 2, 2]
        assert [c.sample_index for c in row] == [0, 1, 2, 3, 4]
        assert len({c.request_key for c in row}) == 5


def test_endpoint_ignoring_n_is_asked_again_for_the_rest(tmp_path: Path) -> None:
    with FakeOpenAIServer(max_choices=1) as server, \
            make_client(server, tmp_path / "j.sqlite") as client:
        request = CompletionRequest("one prompt", PARAMS, n=3)
        (row,) = client.complete([request], purpose="p")
        assert [c.sample_index for c in row] == [0, 1, 2]
        assert [e["body"].get("n", 1) for e in server.completion_log()] == [3, 2, 1]
        assert_no_duplicate_paid(server)
        assert client.usage("p").samples == 3


def test_sdk_default_httpx_transport_works_too(tmp_path: Path, monkeypatch) -> None:
    """Without aiohttp installed the SDK runs on its own httpx transport."""
    monkeypatch.setattr("sipipeline.model.transports.aiohttp_available", lambda: False)
    monkeypatch.setattr("sipipeline.model.transports.sdk_http_client", lambda base_url: None)
    with FakeOpenAIServer(faults=["429", "malformed"]) as server, \
            make_client(server, tmp_path / "j.sqlite") as client:
        assert client.transport_name == "openai"
        batch = requests_for(4)
        results = client.complete(batch, purpose="p")
        assert [[c.text for c in row] for row in results] == [expected_texts(r) for r in batch]
        assert "Aio" not in type(client._transport._client._client).__name__
        assert_no_duplicate_paid(server)


def test_a_journal_that_cannot_be_written_stops_the_work(tmp_path: Path) -> None:
    def broken_record(samples, calls) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    with FakeOpenAIServer() as server, \
            make_client(server, tmp_path / "j.sqlite", max_in_flight=2) as client:
        client.journal.record = broken_record
        with pytest.raises(ModelAccessError, match="journal.*disk is full"):
            client.complete(requests_for(30), purpose="p")
        assert len(server.completion_log()) < 30


def test_empty_batch_sends_nothing(tmp_path: Path) -> None:
    with FakeOpenAIServer() as server, make_client(server, tmp_path / "j.sqlite") as client:
        assert client.complete([], purpose="p") == []
        assert client.complete([CompletionRequest("x", PARAMS, n=0)], purpose="p") == [[]]
        assert server.request_log == []


def test_budget_stops_before_it_is_exceeded(tmp_path: Path) -> None:
    price = TokenPrice(prompt=1000.0, completion=1000.0)  # $0.001 per token
    journal = tmp_path / "j.sqlite"
    with FakeOpenAIServer() as server:
        with make_client(server, journal, price=price, budget_usd=0.2,
                         max_in_flight=2) as client:
            with pytest.raises(ModelAccessError, match="budget") as caught:
                client.complete(requests_for(40), purpose="p")
            assert not caught.value.retryable
            spent = client.usage("p").cost_usd
        assert 0 < spent <= 0.2
        assert 0 < len(server.completion_log()) < 40
        rows = sqlite3.connect(journal).execute("SELECT SUM(cost_usd) FROM calls").fetchone()
        assert rows[0] == pytest.approx(spent)


def test_budget_without_a_price_is_refused() -> None:
    with pytest.raises(ModelAccessError, match="price"):
        ModelClientConfig(base_url="http://127.0.0.1:9/v1", model="unknown-model",
                          journal_path="unused", budget_usd=1.0)


def test_stops_beyond_the_server_limit_are_applied_locally(tmp_path: Path) -> None:
    def responder(prompt: str, body: dict, index: int) -> tuple[str, str]:
        return "alpha beta STOP5 gamma", "length"

    params = SamplingParams(max_tokens=8, stop=("S1", "S2", "S3", "S4", "STOP5"))
    with FakeOpenAIServer(responder=responder) as server:
        with make_client(server, tmp_path / "j.sqlite") as client:
            (row,) = client.complete([CompletionRequest("p", params)], purpose="p")
        assert server.completion_log()[0]["body"]["stop"] == ["S1", "S2", "S3", "S4"]
        assert (row[0].text, row[0].finish_reason) == ("alpha beta ", "stop")
