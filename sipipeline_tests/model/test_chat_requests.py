"""Chat requests on the wire: message lists, response_format, and max_completion_tokens
(set, or learnt once from the endpoint's 400 answer and remembered in the journal), and
structured output dropped once an endpoint says it does not support it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from sipipeline.model.keys import prompt_key
from sipipeline.model.types import CompletionRequest, ModelAccessError, SamplingParams
from sipipeline.model.wire import build_body, wants_max_completion_tokens
from sipipeline.model.wire import rejects_response_format as rejects_response_format_answer
from sipipeline_tests.support.client_helpers import make_client
from sipipeline_tests.support.fake_openai_server import (
    MAX_TOKENS_UNSUPPORTED,
    RESPONSE_FORMAT_UNSUPPORTED,
    FakeOpenAIServer,
    rejects_max_tokens,
    rejects_response_format,
)

PARAMS = SamplingParams(max_tokens=32, temperature=0.0, stop=("\n\n",))
MESSAGES = (("system", "You write tasks."), ("user", "Write one task."),
            ("assistant", "1. Name a colour."), ("user", "Another one."))
SCHEMA = json.dumps({"type": "json_schema", "json_schema": {"name": "t", "schema": {}}})


def test_a_chat_request_sends_its_own_messages_and_response_format():
    request = CompletionRequest("rendered", PARAMS, messages=MESSAGES, response_format=SCHEMA)
    path, body = build_body(request, model="m", api="chat", n=1, max_stop_sequences=4,
                            token_field="max_completion_tokens")
    assert path == "/chat/completions"
    assert body["messages"] == [{"role": r, "content": c} for r, c in MESSAGES]
    assert body["response_format"] == json.loads(SCHEMA)
    assert body["max_completion_tokens"] == 32 and "max_tokens" not in body
    with pytest.raises(ValueError):
        build_body(request, model="m", api="completions", n=1, max_stop_sequences=4)


def test_the_journal_key_of_a_plain_prompt_is_unchanged_and_messages_are_part_of_it():
    plain = CompletionRequest("p", PARAMS)
    with_messages = CompletionRequest("p", PARAMS, messages=MESSAGES)
    other_messages = CompletionRequest("p", PARAMS, messages=MESSAGES[:2])
    with_schema = CompletionRequest("p", PARAMS, messages=MESSAGES, response_format=SCHEMA)
    keys = {prompt_key("e", "m", "chat", r)
            for r in (plain, with_messages, other_messages, with_schema)}
    assert len(keys) == 4
    assert prompt_key("e", "m", "chat", plain) == prompt_key(
        "e", "m", "chat", CompletionRequest("p", PARAMS, messages=()))


def test_which_400_answers_ask_for_max_completion_tokens():
    assert wants_max_completion_tokens(400, MAX_TOKENS_UNSUPPORTED)
    assert not wants_max_completion_tokens(500, MAX_TOKENS_UNSUPPORTED)
    assert not wants_max_completion_tokens(400, "max_completion_tokens must be at most 4096")
    assert not wants_max_completion_tokens(400, "This model's maximum context length is 4097")


def _requests(count: int) -> list[CompletionRequest]:
    return [CompletionRequest(f"prompt {i}", PARAMS, messages=(("user", f"Task {i}"),))
            for i in range(count)]


def test_a_rejected_max_tokens_is_learnt_once_and_remembered_in_the_journal(
        tmp_path: Path, transport: str) -> None:
    journal = tmp_path / "j.sqlite"
    with FakeOpenAIServer(faults=rejects_max_tokens) as server:
        with make_client(server, journal, api="chat", http_transport=transport,
                         max_in_flight=1) as client:
            answers = client.complete(_requests(3), purpose="p")
            assert client.token_limit_field == "max_completion_tokens"
            assert client.usage("p").retries == 0
        log = server.completion_log()
        assert [e["status"] for e in log] == [400, 200, 200, 200]
        assert all(len(a) == 1 and a[0].text for a in answers)
        assert all(e["body"]["max_completion_tokens"] == 32 for e in log[1:])
        # A later client on the same journal asks the right way from its first request.
        with make_client(server, journal, api="chat", http_transport=transport) as client:
            assert client.token_limit_field == "max_completion_tokens"
            client.complete(_requests(5), purpose="p")
        assert [e["status"] for e in server.completion_log()[4:]] == [200, 200]


def test_the_setting_sends_max_completion_tokens_from_the_start(tmp_path: Path) -> None:
    with FakeOpenAIServer(faults=rejects_max_tokens) as server:
        with make_client(server, tmp_path / "j.sqlite", api="chat",
                         token_limit_field="max_completion_tokens") as client:
            client.complete(_requests(2), purpose="p")
        assert [e["status"] for e in server.completion_log()] == [200, 200]


def test_other_400_answers_still_fail_at_once(tmp_path: Path) -> None:
    with FakeOpenAIServer(faults=["400"]) as server:
        with make_client(server, tmp_path / "j.sqlite", api="chat") as client:
            with pytest.raises(ModelAccessError, match="maximum context length"):
                client.complete(_requests(1), purpose="p")
            assert client.token_limit_field == "max_tokens"
        assert len(server.completion_log()) == 1


def test_an_endpoint_that_rejects_both_fields_fails_instead_of_looping(tmp_path: Path) -> None:
    with FakeOpenAIServer(faults=lambda number, body: "max_tokens_unsupported") as server:
        with make_client(server, tmp_path / "j.sqlite", api="chat") as client, \
                pytest.raises(ModelAccessError, match="rejected a request"):
            client.complete(_requests(1), purpose="p")
        assert len(server.completion_log()) == 2


def test_an_endpoint_without_structured_output_is_asked_without_it_from_then_on(
        tmp_path: Path, transport: str) -> None:
    journal = tmp_path / "j.sqlite"
    requests = [CompletionRequest(f"prompt {i}", PARAMS, messages=(("user", f"Task {i}"),),
                                  response_format=SCHEMA) for i in range(3)]
    with FakeOpenAIServer(faults=rejects_response_format) as server:
        with make_client(server, journal, api="chat", http_transport=transport,
                         max_in_flight=1) as client:
            answers = client.complete(requests, purpose="p")
            assert not client.response_format_supported
            assert client.usage("p").retries == 0
        assert all(a[0].text for a in answers)
        log = server.completion_log()
        assert [e["status"] for e in log] == [400, 200, 200, 200]
        assert "response_format" in log[0]["body"]
        assert not any("response_format" in e["body"] for e in log[1:])
        with make_client(server, journal, api="chat", http_transport=transport) as client:
            assert not client.response_format_supported
            client.complete([replace(r, prompt=r.prompt + "!") for r in requests], purpose="p")
        assert [e["status"] for e in server.completion_log()[4:]] == [200, 200, 200]


def test_which_400_answers_reject_structured_output():
    assert rejects_response_format_answer(400, RESPONSE_FORMAT_UNSUPPORTED)
    assert rejects_response_format_answer(400, "json_schema is not supported")
    assert not rejects_response_format_answer(400, MAX_TOKENS_UNSUPPORTED)
    assert not rejects_response_format_answer(429, RESPONSE_FORMAT_UNSUPPORTED)
