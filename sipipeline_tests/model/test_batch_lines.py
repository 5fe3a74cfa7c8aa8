"""Batch files as data: unique custom_ids, the per-file limits, output and error lines."""

from __future__ import annotations

import json

import pytest

from sipipeline.model.batch_lines import (
    batch_errors,
    check_unique,
    half_price,
    parse_output,
    request_line,
    split_files,
)
from sipipeline.model.batch_manifest import RequestLine
from sipipeline.model.pricing import TokenPrice
from sipipeline.model.types import ModelAccessError


def line(custom_id: str, size: int = 10) -> RequestLine:
    return RequestLine(custom_id, "d", (0,), "x" * size)


def test_duplicate_custom_ids_are_refused_before_upload():
    check_unique([line("a"), line("b")])
    with pytest.raises(ModelAccessError, match="custom_id a"):
        check_unique([line("a"), line("b"), line("a")])


def test_files_split_at_the_request_count_and_at_the_byte_size():
    lines = [line(str(i)) for i in range(7)]
    assert [len(f) for f in split_files(lines, max_requests=3)] == [3, 3, 1]
    assert [len(f) for f in split_files(lines, max_bytes=25)] == [2, 2, 2, 1]
    assert [x.custom_id for f in split_files(lines, max_requests=2) for x in f] == [
        str(i) for i in range(7)]
    with pytest.raises(ModelAccessError, match="bytes"):
        split_files([line("big", 100)], max_bytes=50)


def test_a_request_line_is_a_batch_api_line():
    data = json.loads(request_line("k1", "/completions", {"prompt": "p", "model": "m"}))
    assert data == {"custom_id": "k1", "method": "POST", "url": "/v1/completions",
                    "body": {"prompt": "p", "model": "m"}}


def test_output_error_and_broken_lines_are_told_apart():
    content = "\n".join([
        json.dumps({"custom_id": "a", "response": {"status_code": 200,
                                                   "body": {"choices": []}}, "error": None}),
        json.dumps({"custom_id": "b", "response": {"status_code": 400, "body": {
            "error": {"message": "context too long"}}}, "error": None}),
        json.dumps({"custom_id": "c", "response": None,
                    "error": {"code": "x", "message": "batch expired"}}),
        "not json",
    ]).encode()
    parsed = {p.custom_id: p for p in parse_output(content)}
    assert set(parsed) == {"a", "b", "c"}
    assert parsed["a"].body == {"choices": []} and parsed["a"].error is None
    assert parsed["b"].body is None and "context too long" in parsed["b"].error
    assert parsed["c"].error == "batch expired"


def test_batch_errors_and_half_price():
    batch = {"errors": {"data": [{"code": "token_limit_exceeded", "message": "Enqueued",
                                  "line": None}]}}
    assert batch_errors(batch) == "token_limit_exceeded: Enqueued"
    assert half_price(TokenPrice(2.0, 4.0, 1.0)) == TokenPrice(1.0, 2.0, 0.5)
    assert half_price(None) is None
