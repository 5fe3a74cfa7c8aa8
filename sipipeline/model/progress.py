"""Progress of a batch of model requests, for people watching a round.

The client measures (`ProgressMeter`, one per `complete` call) and hands `Progress` snapshots
to a callback; what to do with them is the caller's business: the assets write a line to the
run log at most every ~10 s (`Throttled`), `sipipeline run` draws a bar. Callers in the same
process can also listen to every batch (`listening`), which is how the command line sees the
progress of the assets it runs in process. No Dagster here.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from sipipeline.model.types import Completion, Usage

LOG_INTERVAL_S = 10.0
TICK_S = 0.5


@dataclass(frozen=True)
class Progress:
    """Where one batch of requests stands."""

    purpose: str
    total: int  # requests in the batch (identical prompts counted once)
    done: int  # requests fully answered, by the model or the journal
    from_journal: int  # of `done`, answered from the response journal
    elapsed_s: float
    prompt_tokens: int  # of the calls sent in this batch
    completion_tokens: int
    cost_usd: float
    finished: bool = False

    @property
    def rate(self) -> float | None:
        """Requests answered by the model per second (None before the first)."""
        sent = self.done - self.from_journal
        return sent / self.elapsed_s if sent > 0 and self.elapsed_s > 0 else None

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the current rate (0 when done; None while unknown)."""
        if self.done >= self.total:
            return 0.0
        rate = self.rate
        return (self.total - self.done) / rate if rate else None


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    value = int(round(value))
    return f"{value // 60}m{value % 60:02d}s" if value >= 60 else f"{value}s"


def format_progress(progress: Progress) -> str:
    """One line: done/total, journal answers, rate, ETA, tokens, USD."""
    rate = progress.rate
    state = "done" if progress.finished else f"ETA {_seconds(progress.eta_s)}"
    return (f"{progress.purpose}: {progress.done}/{progress.total} requests "
            f"({progress.from_journal} from the journal), "
            f"{f'{rate:.2f}' if rate else '–'} req/s, {state}, "
            f"{progress.prompt_tokens + progress.completion_tokens:,} tokens, "
            f"${progress.cost_usd:.4f}, {_seconds(progress.elapsed_s)} elapsed")


ProgressCallback = Callable[[Progress], None]


class Throttled:
    """Passes on the first report, then at most one every `interval_s`, and always the last."""

    def __init__(self, callback: ProgressCallback, interval_s: float = LOG_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._callback = callback
        self._interval_s = interval_s
        self._clock = clock
        self._last: float | None = None
        self._lock = threading.Lock()

    def __call__(self, progress: Progress) -> None:
        now = self._clock()
        with self._lock:
            due = (progress.finished or self._last is None
                   or now - self._last >= self._interval_s)
            if due:
                self._last = now
        if due:
            self._callback(progress)


def fan_out(*callbacks: ProgressCallback | None) -> ProgressCallback:
    """One callback that calls each of `callbacks` (None ones skipped)."""
    chosen = [c for c in callbacks if c is not None]

    def call(progress: Progress) -> None:
        for callback in chosen:
            callback(progress)

    return call


_listeners: list[ProgressCallback] = []
_listeners_lock = threading.Lock()


@contextlib.contextmanager
def listening(callback: ProgressCallback) -> Iterator[None]:
    """While inside, `callback` also gets every report `broadcast` in this process."""
    with _listeners_lock:
        _listeners.append(callback)
    try:
        yield
    finally:
        with _listeners_lock:
            _listeners.remove(callback)


def broadcast(progress: Progress) -> None:
    """Hand a report to every current listener (see `listening`)."""
    with _listeners_lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(progress)


class ProgressMeter:
    """Counts one batch's answered requests and reports them (used inside the client)."""

    def __init__(self, purpose: str, rows: Mapping[str, Sequence[Completion | None]],
                 usage: Usage, callback: ProgressCallback,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._purpose = purpose
        self._rows = rows
        self._usage = usage
        self._start_usage = Usage(**usage.as_dict())
        self._callback = callback
        self._clock = clock
        self._started = clock()

    def snapshot(self, finished: bool = False) -> Progress:
        done = from_journal = 0
        for row in list(self._rows.values()):
            if row and all(sample is not None for sample in row):
                done += 1
                if all(sample.from_journal for sample in row):  # type: ignore[union-attr]
                    from_journal += 1
        spent = self._usage.as_dict()
        start = self._start_usage.as_dict()
        return Progress(
            purpose=self._purpose, total=len(self._rows), done=done, from_journal=from_journal,
            elapsed_s=self._clock() - self._started,
            prompt_tokens=int(spent["prompt_tokens"] - start["prompt_tokens"]),
            completion_tokens=int(spent["completion_tokens"] - start["completion_tokens"]),
            cost_usd=float(spent["cost_usd"] - start["cost_usd"]), finished=finished)

    def report(self, finished: bool = False) -> None:
        """Hand a snapshot to the callback; a failing callback never fails the requests."""
        with contextlib.suppress(Exception):
            self._callback(self.snapshot(finished))

    async def keep_reporting(self, tick_s: float = TICK_S) -> None:
        """Report every `tick_s` until cancelled (the callback throttles as it likes)."""
        while True:
            await asyncio.sleep(tick_s)
            self.report()
