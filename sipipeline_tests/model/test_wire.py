"""The OpenAI wire format as pure functions: no server, no event loop."""

from __future__ import annotations

import pytest

from sipipeline.model.types import (
    API_CHAT,
    API_COMPLETIONS,
    CHAT_SYSTEM_MESSAGE,
    CompletionRequest,
    SamplingParams,
)
from sipipeline.model.wire import (
    MalformedResponseError,
    apply_stops,
    build_body,
    error_body_message,
    parse_choices,
    parse_retry_after,
    split_tokens,
)

PARAMS = SamplingParams(max_tokens=16, temperature=0.7, top_p=0.5, stop=("\n\n",))


def test_helpers() -> None:
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({}) is None
    assert apply_stops("a\n\nb", ["\n\n"]) == ("a", True)
    assert apply_stops("abc", ["x"]) == ("abc", False)


def test_completions_body() -> None:
    path, body = build_body(CompletionRequest("Tasks:\n1.", PARAMS, n=3), model="m",
                            api=API_COMPLETIONS, n=3, max_stop_sequences=4)
    assert path == "/completions"
    assert body == {"model": "m", "max_tokens": 16, "temperature": 0.7, "top_p": 0.5,
                    "presence_penalty": 0.0, "frequency_penalty": 0.0, "n": 3,
                    "stop": ["\n\n"], "prompt": "Tasks:\n1."}


def test_chat_body_single_sample_with_seed_and_capped_stops() -> None:
    params = SamplingParams(max_tokens=4, stop=("a", "b", "c", "d", "e"))
    path, body = build_body(CompletionRequest("hello", params), model="m", api=API_CHAT,
                            n=1, max_stop_sequences=4, seed=42)
    assert path == "/chat/completions"
    assert "n" not in body and "prompt" not in body
    assert body["stop"] == ["a", "b", "c", "d"] and body["seed"] == 42
    assert body["messages"] == [{"role": "system", "content": CHAT_SYSTEM_MESSAGE},
                                {"role": "user", "content": "hello"}]


def test_parse_choices_orders_by_index_and_reads_usage() -> None:
    response = {"id": "cmpl-1", "choices": [
        {"index": 1, "text": "second", "finish_reason": "length"},
        {"index": 0, "text": "first", "finish_reason": "stop"},
        {"index": 2, "text": "third", "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 5,
                  "prompt_tokens_details": {"cached_tokens": 3}}}
    parsed = parse_choices(response, api=API_COMPLETIONS, limit=2)
    assert parsed.texts == ["first", "second"]
    assert parsed.finish_reasons == ["stop", "length"]
    assert (parsed.prompt_tokens, parsed.completion_tokens, parsed.cached_tokens) == (7, 5, 3)
    assert parsed.response_id == "cmpl-1"


def test_parse_choices_chat_and_local_stops() -> None:
    response = {"choices": [{"index": 0, "finish_reason": "length",
                             "message": {"role": "assistant", "content": "one STOP two"}}]}
    parsed = parse_choices(response, api=API_CHAT, limit=1, extra_stops=("STOP",))
    assert (parsed.texts, parsed.finish_reasons) == (["one "], ["stop"])
    assert (parsed.prompt_tokens, parsed.completion_tokens, parsed.response_id) == (0, 0, "")


@pytest.mark.parametrize("response", [[], "text", None, {"choices": [], "usage": ["bad"]}])
def test_parse_choices_rejects_what_is_not_an_answer(response) -> None:
    with pytest.raises(MalformedResponseError):
        parse_choices(response, api=API_COMPLETIONS, limit=1)


def test_error_body_message() -> None:
    assert error_body_message(b'{"error": {"message": "too long"}}') == "too long"
    assert error_body_message(b"<html>bad gateway") == "<html>bad gateway"
    assert error_body_message(b'{"detail": "x"}') == "{'detail': 'x'}"


def test_split_tokens_shares_by_length_and_sums_to_the_total() -> None:
    assert split_tokens(10, []) == []
    shares = split_tokens(10, ["aaaa", "a", ""])
    assert sum(shares) == 10 and shares[0] > shares[1] >= shares[2]


@pytest.mark.parametrize(("choice", "problem"), [
    ({"index": 0, "finish_reason": "stop"}, "without text"),
    ({"index": 0, "text": None, "finish_reason": "stop"}, "NoneType, not a string"),
    ({"index": 0, "text": 7, "finish_reason": "stop"}, "int, not a string"),
    ({"index": 0, "text": ["a"], "finish_reason": "stop"}, "list, not a string"),
    ({"index": 0, "text": "", "finish_reason": None}, "empty text and no finish_reason"),
    ({"index": 0, "text": ""}, "empty text and no finish_reason"),
])
def test_a_choice_without_usable_text_is_not_an_answer(choice, problem) -> None:
    parsed = parse_choices({"choices": [choice], "usage": {"completion_tokens": 3}},
                           api=API_COMPLETIONS, limit=1)
    assert parsed.texts == [] and problem in parsed.problem
    assert parsed.completion_tokens == 3  # still accounted: the endpoint may charge for it


@pytest.mark.parametrize(("message", "problem"), [
    (None, "without message.content"),
    ({"role": "assistant"}, "without message.content"),
    ({"role": "assistant", "content": None}, "NoneType, not a string"),
    ({"role": "assistant", "content": {"x": 1}}, "dict, not a string"),
])
def test_a_chat_choice_without_usable_content_is_not_an_answer(message, problem) -> None:
    parsed = parse_choices({"choices": [{"index": 0, "finish_reason": "stop",
                                         "message": message}]}, api=API_CHAT, limit=1)
    assert parsed.texts == [] and problem in parsed.problem


def test_an_explicit_empty_completion_with_a_reason_is_an_answer() -> None:
    parsed = parse_choices({"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]},
                           api=API_COMPLETIONS, limit=1)
    assert (parsed.texts, parsed.finish_reasons, parsed.problem) == ([""], ["stop"], None)


def test_usable_choices_are_kept_next_to_unusable_ones() -> None:
    response = {"choices": [{"index": 0, "text": "good", "finish_reason": "stop"},
                            {"index": 1, "finish_reason": "stop"},
                            "not an object",
                            {"index": 2, "text": "also good", "finish_reason": "length"}]}
    parsed = parse_choices(response, api=API_COMPLETIONS, limit=4)
    assert parsed.texts == ["good", "also good"]
    assert "without text" in parsed.problem and "not a JSON object" in parsed.problem


@pytest.mark.parametrize("response", [{}, {"choices": []}, {"choices": None}])
def test_no_choices_is_a_problem(response) -> None:
    assert parse_choices(response, api=API_COMPLETIONS, limit=1).problem == "no choices"


def test_choices_that_are_not_a_list_are_malformed() -> None:
    with pytest.raises(MalformedResponseError, match="not a list"):
        parse_choices({"choices": {"text": "x"}}, api=API_COMPLETIONS, limit=1)
