"""One adaptive rate limiter per endpoint and process, shared by every client that calls it.

Endpoints limit requests and tokens per minute and say how much is left in `x-ratelimit-*`
headers. The limiter keeps a model of both buckets from those headers (limit, remaining, time
to reset: the refill rate is what was used divided by the time to refill it), takes a
request's share (1 request; prompt estimate + max_tokens tokens) before it is sent and gives
back what the answer's usage shows was over-estimated. Without headers it learns a sending rate
from 429s instead: a 429 lowers the rate multiplicatively, successes raise it a little at a
time. Either way a 429 pauses every client of the endpoint (Retry-After), and the in-flight
window adapts (additive increase, multiplicative decrease) up to `max_in_flight`.

A circuit breaker watches the outcomes: when every answer for `breaker_window_s` was a 429 or
a 5xx (or no answer at all), it opens and requests fail at once with a message naming the
cause, instead of retrying into a wall; it closes again after another window.

Clients run their own event loops on their own threads, so the state is guarded by a
threading lock and waits are short sleeps on the waiter's own loop.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from sipipeline.model.types import ModelAccessError

#: Longest single sleep of a waiting request: it looks again after this (a slot may be free).
POLL_S = 0.02
#: A 429 without Retry-After pauses everyone this long.
DEFAULT_PAUSE_S = 1.0
#: Multiplicative decrease of the learned rate and of the window on a 429.
RATE_DECREASE = 0.85
WINDOW_DECREASE = 0.5
#: Additive increase of the window per success.
WINDOW_INCREASE = 0.5
#: Additive increase of the learned rate per success, as a share of the rate (so the rate
#: grows by about this share per second of successes).
RATE_INCREASE = 0.03
#: Pace a little under the refill rate the headers imply, and smooth its estimate.
RATE_MARGIN = 0.98
RATE_SMOOTHING = 0.2
#: Successes within the last second needed before a rate is learned from a 429.
MIN_SUCCESSES_TO_LEARN = 4
#: Per-minute limits when the headers give no time to reset.
DEFAULT_LIMIT_PERIOD_S = 60.0

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


class CircuitOpenError(ModelAccessError):
    """Sustained failure of an endpoint: not retried (a retry would meet the same wall)."""


def parse_reset(value: str | None) -> float | None:
    """Seconds in an `x-ratelimit-reset-*` value: '1s', '6m0s', '20ms', '1h2m3.5s' or '0.5'."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(number) * scale[unit] for number, unit in parts)


@dataclass
class RateLimitHeaders:
    """The `x-ratelimit-*` facts of one answer, for requests ('requests') or tokens."""

    limit: float
    remaining: float
    reset_s: float | None


def read_rate_limits(headers: Mapping[str, str] | None, kind: str) -> RateLimitHeaders | None:
    """The `x-ratelimit-{limit,remaining,reset}-{kind}` headers, when the answer has them."""
    if not headers:
        return None
    try:
        limit = headers.get(f"x-ratelimit-limit-{kind}")
        remaining = headers.get(f"x-ratelimit-remaining-{kind}")
        if limit is None or remaining is None:
            return None
        return RateLimitHeaders(float(limit), float(remaining),
                                parse_reset(headers.get(f"x-ratelimit-reset-{kind}")))
    except (TypeError, ValueError):
        return None


class _Bucket:
    """The limiter's view of one of the endpoint's token buckets (requests or tokens)."""

    def __init__(self) -> None:
        self.capacity: float | None = None
        self.rate: float | None = None  # refill per second
        self.level = 0.0
        self.updated = 0.0

    def known(self) -> bool:
        return self.capacity is not None and self.rate is not None

    def refill(self, now: float) -> None:
        if self.known():
            self.level = min(self.capacity, self.level + self.rate * (now - self.updated))
        self.updated = now

    def observe(self, facts: RateLimitHeaders, now: float, outstanding: float) -> None:
        """Take in an answer's facts; `outstanding`: what is in flight (the endpoint may not
        have counted it yet), subtracted from the first view of the bucket."""
        first = not self.known()
        self.refill(now)
        # `remaining` is a whole number rounded down: half a unit more was used on average.
        used = facts.limit - facts.remaining - 0.5
        if facts.reset_s and used >= 1:
            estimate = used / facts.reset_s * RATE_MARGIN
            self.rate = estimate if self.rate is None else (
                self.rate + RATE_SMOOTHING * (estimate - self.rate))
        elif self.rate is None:
            self.rate = facts.limit / DEFAULT_LIMIT_PERIOD_S
        self.capacity = facts.limit
        # The endpoint's count is the truth at the time it answered; ours also knows what was
        # sent since. The smaller of the two is never optimistic.
        self.level = (facts.remaining - outstanding if first
                      else min(self.level, facts.remaining))

    def wait_s(self, cost: float, now: float) -> float:
        if not self.known():
            return 0.0
        self.refill(now)
        need = min(cost, self.capacity) - self.level
        return 0.0 if need <= 0 else need / self.rate

    def take(self, cost: float) -> None:
        if self.known():
            self.level -= cost

    def give_back(self, amount: float) -> None:
        if self.known() and amount > 0:
            self.level = min(self.capacity, self.level + amount)


@dataclass
class Permit:
    """One request's place in the window and its share of the buckets."""

    tokens: float
    sent_at: float


class EndpointLimiter:
    """Admission control for one endpoint: window, buckets, learned rate, pause, breaker."""

    def __init__(self, name: str, max_in_flight: int, breaker_window_s: float) -> None:
        self.name = name
        self.max_in_flight = max_in_flight
        self.breaker_window_s = breaker_window_s
        self.window = float(max_in_flight)
        self.in_flight = 0
        self.in_flight_tokens = 0.0
        self.requests = _Bucket()
        self.tokens = _Bucket()
        self.learned_rate: float | None = None  # requests/s, learned from 429s (no headers)
        self.next_send_at = 0.0
        self.pause_until = 0.0
        self.last_decrease = 0.0
        self.rate_limited = 0  # 429 answers seen
        self.answered = 0
        self._failing_since: float | None = None
        self._failures: dict[str, int] = {}
        self._open_until = 0.0
        self._open_message = ""
        self._successes: deque[float] = deque()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ admission
    async def acquire(self, tokens: float) -> Permit:
        """Wait until a request of `tokens` tokens may go out; raise when the breaker is open."""
        while True:
            with self._lock:
                now = time.monotonic()
                self._check_breaker(now)
                delay = max(self.pause_until - now,
                            self.requests.wait_s(1, now),
                            self.tokens.wait_s(tokens, now))
                if self.learned_rate is not None and not self.requests.known():
                    delay = max(delay, self.next_send_at - now)
                if delay <= 0 and self.in_flight < max(1, int(self.window)):
                    self.in_flight += 1
                    self.in_flight_tokens += tokens
                    self.requests.take(1)
                    self.tokens.take(tokens)
                    if self.learned_rate is not None:
                        self.next_send_at = max(now, self.next_send_at) + 1 / self.learned_rate
                    return Permit(tokens, now)
            await asyncio.sleep(min(max(delay, 0.001), POLL_S))

    # ------------------------------------------------------------------ outcomes
    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """Take in the `x-ratelimit-*` headers of any answer from the endpoint."""
        with self._lock:
            self._observe(headers, time.monotonic())

    def succeeded(self, permit: Permit, tokens_used: float | None) -> None:
        """An answer arrived: give back over-reserved tokens, grow the window and rate."""
        with self._lock:
            now = time.monotonic()
            self._end(permit, now)
            self.answered += 1
            self._successes.append(now)
            if tokens_used is not None:
                self.tokens.give_back(permit.tokens - tokens_used)
            self.window = min(float(self.max_in_flight), self.window + WINDOW_INCREASE)
            if self.learned_rate is not None:
                self.learned_rate += RATE_INCREASE
            self._failing_since = None
            self._failures.clear()

    def rate_limited_answer(self, permit: Permit, retry_after: float | None) -> None:
        """A 429: everyone pauses, the window and the learned rate shrink (once per pause)."""
        with self._lock:
            now = time.monotonic()
            self._end(permit, now)
            self.answered += 1
            self.rate_limited += 1
            pause = DEFAULT_PAUSE_S if retry_after is None else retry_after
            self.pause_until = max(self.pause_until, now + pause)
            if permit.sent_at >= self.last_decrease:
                # Only answers to requests sent after the last decrease say the current
                # window and rate are still too much.
                self.last_decrease = now
                self.window = max(1.0, self.window * WINDOW_DECREASE)
                if self.learned_rate is not None:
                    self.learned_rate *= RATE_DECREASE
                elif not self.requests.known():
                    self.learned_rate = self._rate_now(now)
            self._failed("HTTP 429 (rate limited)", now)

    def failed(self, permit: Permit, cause: str) -> None:
        """A 5xx, a timeout or a connection error."""
        with self._lock:
            now = time.monotonic()
            self._end(permit, now)
            self._failed(cause, now)

    def released(self, permit: Permit) -> None:
        """The request ended without an answer worth learning from (e.g. a 400)."""
        with self._lock:
            self._end(permit, time.monotonic())

    # ------------------------------------------------------------------ internals
    def _end(self, permit: Permit, now: float) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        self.in_flight_tokens = max(0.0, self.in_flight_tokens - permit.tokens)
        cutoff = now - 1.0
        while self._successes and self._successes[0] < cutoff:
            self._successes.popleft()

    def _rate_now(self, now: float) -> float | None:
        """Successes per second lately: a first guess at the allowed rate, on the high side
        (a burst the bucket had saved up), which the next 429s bring down quickly. None
        without enough successes to tell (the pause alone must do)."""
        if len(self._successes) < MIN_SUCCESSES_TO_LEARN:
            return None
        span = max(now - self._successes[0], 0.1)
        return max(1.0, len(self._successes) / span)

    def _observe(self, headers: Mapping[str, str] | None, now: float) -> None:
        requests = read_rate_limits(headers, "requests")
        if requests is not None:
            self.requests.observe(requests, now, self.in_flight)
        tokens = read_rate_limits(headers, "tokens")
        if tokens is not None:
            self.tokens.observe(tokens, now, self.in_flight_tokens)

    def _failed(self, cause: str, now: float) -> None:
        if self._failing_since is None:
            self._failing_since = now
        self._failures[cause] = self._failures.get(cause, 0) + 1
        if now - self._failing_since >= self.breaker_window_s and now >= self._open_until:
            causes = ", ".join(f"{count} x {name}" for name, count in
                               sorted(self._failures.items(), key=lambda item: -item[1]))
            self._open_message = (
                f"circuit breaker open: every answer from {self.name} for the last "
                f"{now - self._failing_since:.0f} s (breaker_window_s="
                f"{self.breaker_window_s:g}) was a failure ({causes}); stopping instead of "
                "retrying. Check the account's rate limits and quota or the endpoint's health; "
                "received samples are journaled, run again later to continue")
            self._open_until = now + self.breaker_window_s
            self._failing_since = None
            self._failures.clear()

    def _check_breaker(self, now: float) -> None:
        if now < self._open_until:
            raise CircuitOpenError(self._open_message)


_LIMITERS: dict[str, EndpointLimiter] = {}
_REGISTRY_LOCK = threading.Lock()


def shared_limiter(endpoint: str, max_in_flight: int, breaker_window_s: float
                   ) -> EndpointLimiter:
    """The process's limiter of `endpoint` (made on first use; the largest window asked wins)."""
    with _REGISTRY_LOCK:
        limiter = _LIMITERS.get(endpoint)
        if limiter is None:
            limiter = _LIMITERS[endpoint] = EndpointLimiter(endpoint, max_in_flight,
                                                            breaker_window_s)
        else:
            with limiter._lock:
                if max_in_flight > limiter.max_in_flight:
                    limiter.max_in_flight = max_in_flight
                limiter.breaker_window_s = breaker_window_s
        return limiter


def forget_shared_limiters() -> None:
    """Drop every endpoint's limiter (what it learned, pauses, an open breaker): the next
    client starts afresh. For tests, where a new fake endpoint may reuse an old port."""
    with _REGISTRY_LOCK:
        _LIMITERS.clear()
