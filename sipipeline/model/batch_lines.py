"""Batch API files as pure functions: request lines in, answers out, split by the API's limits.

A request line's `custom_id` is the journal key of the request's first sample (with one
sample per request, as the round assets ask, exactly the sample's journal key), so an answer
is matched to its samples by key and never by position.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sipipeline.model.batch_manifest import RequestLine
from sipipeline.model.pricing import TokenPrice
from sipipeline.model.types import ModelAccessError
from sipipeline.model.wire import error_body_message

#: The Batch API's limits on one input file.
MAX_REQUESTS_PER_FILE = 50_000
MAX_BYTES_PER_FILE = 200 * 1024 * 1024


@dataclass(frozen=True)
class OutputLine:
    """One line of an output or error file: the answer body, or why there is none."""

    custom_id: str
    body: dict[str, Any] | None
    error: str | None
    status: int = 0  # the HTTP status of a non-200 answer line


def request_line(custom_id: str, path: str, body: dict[str, Any]) -> str:
    """One JSONL line: POST `/v1<path>` with `body`, tagged with `custom_id`."""
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": f"/v1{path}",
                       "body": body}, ensure_ascii=False, separators=(",", ":"))


def check_unique(lines: Sequence[RequestLine]) -> None:
    """Refuse lines that share a `custom_id`: one answer would overwrite the other."""
    seen: set[str] = set()
    for line in lines:
        if line.custom_id in seen:
            raise ModelAccessError(f"two batch requests share the custom_id {line.custom_id}; "
                                   "nothing was uploaded")
        seen.add(line.custom_id)


def split_files(lines: Sequence[RequestLine], max_requests: int = MAX_REQUESTS_PER_FILE,
                max_bytes: int = MAX_BYTES_PER_FILE) -> list[list[RequestLine]]:
    """Consecutive groups of lines, each within the request and byte limits of one file."""
    files: list[list[RequestLine]] = []
    current: list[RequestLine] = []
    size = 0
    for line in lines:
        line_bytes = len(line.line.encode("utf-8")) + 1
        if line_bytes > max_bytes:
            raise ModelAccessError(f"one batch request is {line_bytes} bytes, more than a "
                                   f"batch file may hold ({max_bytes})")
        if current and (len(current) >= max_requests or size + line_bytes > max_bytes):
            files.append(current)
            current, size = [], 0
        current.append(line)
        size += line_bytes
    if current:
        files.append(current)
    return files


def file_content(lines: Sequence[RequestLine]) -> bytes:
    return "".join(line.line + "\n" for line in lines).encode("utf-8")


def parse_output(content: bytes) -> list[OutputLine]:
    """The lines of an output or error file; a line that is not JSON is skipped (its request
    then counts as missing and is sent again)."""
    parsed: list[OutputLine] = []
    for raw in content.decode("utf-8", "replace").splitlines():
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(data, dict) or not isinstance(data.get("custom_id"), str):
            continue
        response = data.get("response") if isinstance(data.get("response"), dict) else {}
        status = response.get("status_code")
        body = response.get("body")
        error = data.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else str(error)
            parsed.append(OutputLine(data["custom_id"], None, str(message or error)[:300]))
        elif status == 200 and isinstance(body, dict):
            parsed.append(OutputLine(data["custom_id"], body, None))
        else:
            reason = error_body_message(json.dumps(body).encode()) if body else "no body"
            parsed.append(OutputLine(data["custom_id"], None, f"HTTP {status}: {reason}",
                                     status if isinstance(status, int) else 0))
    return parsed


def batch_errors(batch: dict[str, Any]) -> str:
    """The errors a batch reports (e.g. the enqueued-token limit), as one line."""
    errors = batch.get("errors") or {}
    items = errors.get("data") if isinstance(errors, dict) else errors
    messages = []
    for item in items or []:
        if isinstance(item, dict):
            code = item.get("code") or "error"
            line = f" (line {item['line']})" if item.get("line") is not None else ""
            messages.append(f"{code}{line}: {item.get('message') or ''}".strip())
    return "; ".join(messages)[:1000]


def half_price(price: TokenPrice | None) -> TokenPrice | None:
    """The Batch API's price: half of every online token price."""
    if price is None:
        return None
    cached = None if price.cached_prompt is None else price.cached_prompt / 2
    return TokenPrice(price.prompt / 2, price.completion / 2, cached)
