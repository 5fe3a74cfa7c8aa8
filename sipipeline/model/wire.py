"""The OpenAI wire format as pure functions: request bodies, answers, error bodies, headers.

Nothing here does I/O or needs an event loop, so each rule of the format is tested directly.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from sipipeline.model.types import (
    API_CHAT,
    CHAT_SYSTEM_MESSAGE,
    MAX_COMPLETION_TOKENS,
    MAX_TOKENS,
    CompletionRequest,
)

COMPLETIONS_PATH = "/completions"
CHAT_PATH = "/chat/completions"


class MalformedResponseError(ValueError):
    """The endpoint answered 200 with something that is not a usable completion."""


@dataclass(frozen=True)
class ParsedResponse:
    """The usable choices of one answer (in choice-index order) and its token usage.

    `problem` says what was wrong when some choices (or all, or the list itself) were not
    usable; those are not answers and must be asked for again.
    """

    texts: list[str]
    finish_reasons: list[str]
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    response_id: str
    problem: str | None = None


def build_body(request: CompletionRequest, *, model: str, api: str, n: int,
               max_stop_sequences: int, seed: int | None = None,
               token_field: str = MAX_TOKENS) -> tuple[str, dict[str, Any]]:
    """The path and JSON body asking for `n` samples of `request`.

    At most `max_stop_sequences` stops are sent (OpenAI accepts four); the rest are applied
    to the answers by `apply_stops`. The token limit goes in `token_field`. In chat mode a
    request's own messages are sent as they are, else its prompt as a document to continue.
    """
    params = request.params
    body: dict[str, Any] = {
        "model": model,
        token_field: params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "presence_penalty": params.presence_penalty,
        "frequency_penalty": params.frequency_penalty,
    }
    if n != 1:
        body["n"] = n
    stops = list(params.stop[:max_stop_sequences])
    if stops:
        body["stop"] = stops
    if seed is not None:
        body["seed"] = seed
    if api == API_CHAT:
        if request.messages:
            body["messages"] = [{"role": role, "content": content}
                                for role, content in request.messages]
        else:
            body["messages"] = [{"role": "system", "content": CHAT_SYSTEM_MESSAGE},
                                {"role": "user", "content": request.prompt}]
        if request.response_format:
            body["response_format"] = json.loads(request.response_format)
        return CHAT_PATH, body
    if request.messages or request.response_format:
        raise ValueError("chat messages and response_format need the chat API mode")
    body["prompt"] = request.prompt
    return COMPLETIONS_PATH, body


def parse_choices(response: Any, *, api: str, limit: int,
                  extra_stops: Sequence[str] = ()) -> ParsedResponse:
    """The first `limit` usable choices of an answer, with `extra_stops` applied, and its usage.

    A choice is usable when its text (`text`, or `message.content` in chat mode) is a string
    and, if that string is empty, the choice also says why it ended (`finish_reason`): a model
    may legitimately stop at once, but a choice with no text, a null or non-string one, or an
    empty one with no reason is a malformed answer, never a sample.
    """
    if not isinstance(response, dict):
        raise MalformedResponseError("the answer is not a JSON object")
    try:
        raw_choices = response.get("choices")
        if raw_choices is not None and not isinstance(raw_choices, list):
            raise MalformedResponseError("`choices` is not a list")
        choices = sorted((c for c in raw_choices or [] if isinstance(c, dict)),
                         key=lambda c: c.get("index") or 0)
        texts: list[str] = []
        finishes: list[str] = []
        problems: list[str] = []
        for choice in choices:
            if len(texts) == limit:
                break
            text, problem = _choice_text(choice, api)
            if problem is not None:
                problems.append(problem)
                continue
            finish = choice.get("finish_reason") or "unknown"
            if extra_stops:
                text, was_cut = apply_stops(text, extra_stops)
                if was_cut:
                    finish = "stop"
            texts.append(text)
            finishes.append(str(finish))
        if not raw_choices:
            problems.append("no choices")
        elif len(problems) + len(texts) < min(limit, len(raw_choices)):
            problems.append("a choice that is not a JSON object")
        usage = response.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        return ParsedResponse(
            texts=texts, finish_reasons=finishes,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=(int(details.get("cached_tokens") or 0)
                           if isinstance(details, dict) else 0),
            response_id=str(response.get("id") or ""),
            problem=", ".join(sorted(set(problems))) or None)
    except (TypeError, ValueError, AttributeError) as error:
        if isinstance(error, MalformedResponseError):
            raise
        raise MalformedResponseError(f"unexpected answer structure: {error}") from None


def _choice_text(choice: dict[str, Any], api: str) -> tuple[str, str | None]:
    """(text, None) for a usable choice, else ("", what is wrong with it)."""
    if api == API_CHAT:
        message = choice.get("message")
        if not isinstance(message, dict) or "content" not in message:
            return "", "a choice without message.content"
        text, field = message["content"], "message.content"
    else:
        if "text" not in choice:
            return "", "a choice without text"
        text, field = choice["text"], "text"
    if not isinstance(text, str):
        return "", f"a choice whose {field} is {type(text).__name__}, not a string"
    if not text and not choice.get("finish_reason"):
        return "", f"a choice with an empty {field} and no finish_reason"
    return text, None


_MAX_TOKENS_WORD = re.compile(rf"\b{MAX_TOKENS}\b")


def wants_max_completion_tokens(status: int, message: str) -> bool:
    """True for the 400 answer of an endpoint that rejects `max_tokens` and names
    `max_completion_tokens` instead (OpenAI's reasoning and newer chat models)."""
    return (status == 400 and MAX_COMPLETION_TOKENS in message
            and _MAX_TOKENS_WORD.search(message) is not None)


def rejects_response_format(status: int, message: str) -> bool:
    """True for the 400 answer of an endpoint that does not support `response_format` (or
    its JSON-schema form)."""
    lowered = message.lower()
    return status == 400 and ("response_format" in lowered or "json_schema" in lowered)


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def error_body_message(payload: bytes) -> str:
    """The `error.message` of an OpenAI-style error body, else the start of the body."""
    try:
        data = json.loads(payload)
    except ValueError:
        return payload[:300].decode("utf-8", "replace")
    inner = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(inner, dict) and inner.get("message"):
        return str(inner["message"])[:300]
    return str(inner)[:300]


def apply_stops(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` at the earliest of `stops`; True when it was cut."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def split_tokens(total: int, texts: Sequence[str]) -> list[int]:
    """Share a response's completion tokens among its samples in proportion to text length."""
    if not texts:
        return []
    lengths = [len(t) + 1 for t in texts]
    whole = sum(lengths)
    shares = [total * length // whole for length in lengths]
    shares[0] += total - sum(shares)
    return shares
