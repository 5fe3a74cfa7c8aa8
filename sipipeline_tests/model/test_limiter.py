"""The shared per-endpoint limiter: headers, pacing against enforced limits, the breaker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sipipeline.model.limiter import (
    EndpointLimiter,
    parse_reset,
    read_rate_limits,
    shared_limiter,
)
from sipipeline.model.types import CompletionRequest, ModelAccessError, SamplingParams
from sipipeline_tests.support.client_helpers import make_client
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer, RateLimit

SHORT = SamplingParams(max_tokens=4)


def test_parse_reset_durations() -> None:
    assert parse_reset("1s") == 1.0
    assert parse_reset("6m0s") == 360.0
    assert parse_reset("20ms") == pytest.approx(0.02)
    assert parse_reset("1h2m3.5s") == pytest.approx(3723.5)
    assert parse_reset("0.5") == 0.5
    assert parse_reset("soon") is None and parse_reset(None) is None


def test_read_rate_limits_needs_limit_and_remaining() -> None:
    headers = {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59",
               "x-ratelimit-reset-requests": "1s"}
    facts = read_rate_limits(headers, "requests")
    assert (facts.limit, facts.remaining, facts.reset_s) == (60, 59, 1.0)
    assert read_rate_limits(headers, "tokens") is None
    assert read_rate_limits({"x-ratelimit-limit-requests": "x",
                             "x-ratelimit-remaining-requests": "1"}, "requests") is None


def test_one_limiter_per_endpoint_shared_by_clients(tmp_path: Path) -> None:
    with FakeOpenAIServer() as server, make_client(server, tmp_path / "a.sqlite") as first, \
            make_client(server, tmp_path / "b.sqlite", max_in_flight=9) as second:
        assert first._limiter is second._limiter
        assert first._limiter.max_in_flight == 9


def test_a_429_pauses_everyone_and_halves_the_window() -> None:
    limiter = EndpointLimiter("e", max_in_flight=8, breaker_window_s=60)

    async def scenario() -> None:
        permits = [await limiter.acquire(10) for _ in range(3)]
        assert limiter.in_flight == 3
        limiter.rate_limited_answer(permits[0], retry_after=0.2)
        limiter.rate_limited_answer(permits[1], retry_after=0.2)  # same episode
        assert limiter.window == 4.0
        assert limiter.pause_until > 0
        limiter.succeeded(permits[2], None)

    asyncio.run(scenario())
    assert limiter.in_flight == 0 and limiter.rate_limited == 2


def test_headers_pace_requests_from_the_bucket_they_describe() -> None:
    limiter = EndpointLimiter("e", max_in_flight=100, breaker_window_s=60)
    headers = {"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "0",
               "x-ratelimit-reset-requests": "1s"}

    async def scenario() -> None:
        permit = await limiter.acquire(1)
        limiter.observe_headers(headers)
        limiter.succeeded(permit, None)
        # Empty bucket refilling 100 per second, and the request in flight (perhaps not yet
        # counted there) taken from it: the next request waits for two refills, about 20 ms.
        assert limiter.requests.rate == pytest.approx(100, rel=0.05)
        assert 0.015 < limiter.requests.wait_s(1, limiter.requests.updated) <= 0.025

    asyncio.run(scenario())


def _paced_run(tmp_path: Path, rate_limit: RateLimit, count: int) -> tuple[float, float]:
    """Send `count` requests through a rate-limited fake; (throughput / limit, 429 share).

    Throughput is measured after the first period (the bucket starts full, a burst any client
    gets for free) up to the last accepted request, from the server's own log.
    """
    with FakeOpenAIServer(rate_limit=rate_limit) as server, \
            make_client(server, tmp_path / "j.sqlite", max_in_flight=32, max_retries=50,
                        backoff_base_s=0.01, backoff_max_s=1.0) as client:
        requests = [CompletionRequest(f"task {i}", SHORT) for i in range(count)]
        client.complete(requests, purpose="p")
        log = server.completion_log()
    accepted = sorted(e["time"] for e in log if e["status"] == 200)
    start = accepted[0] + rate_limit.period_s
    measured = [t for t in accepted if t >= start]
    span = measured[-1] - start
    throughput = (len(measured) - 1) / span
    limit = rate_limit.requests / rate_limit.period_s
    rejected = sum(1 for e in log if e.get("rate_limited"))
    return throughput / limit, rejected / len(log)


def test_throughput_near_an_enforced_request_limit_with_headers(tmp_path: Path) -> None:
    fraction, rejected = _paced_run(
        tmp_path, RateLimit(requests=40, tokens=100_000, period_s=0.5), count=320)
    assert 0.9 <= fraction <= 1.1
    assert rejected < 0.05


def test_throughput_near_an_enforced_token_limit_with_headers(tmp_path: Path) -> None:
    # Each request costs 2 prompt words + 4 max_tokens = 6 tokens: 480 tokens/s = 80 req/s.
    fraction, rejected = _paced_run(
        tmp_path, RateLimit(requests=10_000, tokens=240 * 6 / 3, period_s=0.5 / 3), count=320)
    # fraction is against the request limit; the token bucket binds instead.
    assert rejected < 0.05
    rate_limit = RateLimit(requests=10_000, tokens=240 * 6 / 3, period_s=0.5 / 3)
    token_rate = rate_limit.tokens / rate_limit.period_s / 6
    fraction_of_tokens = fraction * rate_limit.requests / rate_limit.period_s / token_rate
    assert 0.9 <= fraction_of_tokens <= 1.1


def test_throughput_without_headers_learns_the_rate_from_429s(tmp_path: Path) -> None:
    fraction, _ = _paced_run(
        tmp_path, RateLimit(requests=40, tokens=None, period_s=0.5, headers=False), count=320)
    assert 0.8 <= fraction <= 1.2


def test_a_wall_of_429s_opens_the_breaker_with_a_clear_message(tmp_path: Path) -> None:
    with FakeOpenAIServer(faults=lambda number, body: "429") as server, \
            make_client(server, tmp_path / "j.sqlite", max_retries=100_000,
                        breaker_window_s=0.5) as client:
        with pytest.raises(ModelAccessError, match="circuit breaker open") as failure:
            client.complete([CompletionRequest(f"t {i}", SHORT) for i in range(4)], purpose="p")
        assert "HTTP 429" in str(failure.value) and "breaker_window_s=0.5" in str(failure.value)
        assert not failure.value.retryable
        assert not server.paid_log()


def test_a_success_resets_the_breaker_and_5xx_count_as_failure() -> None:
    limiter = shared_limiter("test-mixed-endpoint", 4, breaker_window_s=0.3)

    async def scenario() -> None:
        for _ in range(3):  # failures, each run of them shorter than the window
            permit = await limiter.acquire(1)
            limiter.failed(permit, "HTTP 500")
            await asyncio.sleep(0.2)
            permit = await limiter.acquire(1)
            limiter.succeeded(permit, None)
        for _ in range(3):  # failures only, for longer than the window
            permit = await limiter.acquire(1)
            limiter.failed(permit, "HTTP 503")
            await asyncio.sleep(0.2)
        with pytest.raises(ModelAccessError, match="HTTP 503"):
            await limiter.acquire(1)

    asyncio.run(scenario())


def test_both_transports_pass_the_headers_to_the_limiter(tmp_path: Path, transport: str) -> None:
    limits = RateLimit(requests=1000, tokens=100_000, period_s=60)
    with FakeOpenAIServer(rate_limit=limits) as server, \
            make_client(server, tmp_path / "j.sqlite", http_transport=transport) as client:
        client.complete([CompletionRequest("one", SHORT)], purpose="p")
        limiter = client._limiter
        assert limiter.requests.capacity == 1000 and limiter.tokens.capacity == 100_000
        assert limiter.requests.known() and limiter.tokens.known()
