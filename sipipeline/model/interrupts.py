"""Notice SIGINT/SIGTERM while the main thread waits for the model client's event loop.

The client's synchronous facade waits for work running on another thread. A signal must stop
that wait promptly, whatever handler the application installed: one that raises (Python's
default SIGINT handler, Dagster's while user code runs) raises out of the wait; one that only
records the signal for later (Dagster's `capture_interrupts`) would leave the main thread
waiting for a hung request, so the signal is also recorded here and the wait ends with
`StoppedBySignalError`; with the default action (SIGTERM) the signal is delivered again once the
client has stopped its work and written its journal.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

WATCHED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StoppedBySignalError(Exception):
    """A watched signal arrived and its handler did not raise: stop and report it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.default_action = False  # True: deliver it again after cleaning up
        super().__init__(signal.Signals(signum).name)


class SignalWatch:
    """The signals received since `watch_signals()` began."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.default_action: set[int] = set()

    def check(self) -> None:
        """Raise `StoppedBySignalError` for the first signal received, if any."""
        if self.received:
            stop = StoppedBySignalError(self.received[0])
            stop.default_action = stop.signum in self.default_action
            raise stop


@contextmanager
def watch_signals() -> Iterator[SignalWatch]:
    """Record SIGINT/SIGTERM (calling the handlers installed before) while in this block.

    Only the main thread can install handlers; elsewhere nothing is watched.
    """
    watch = SignalWatch()
    if threading.current_thread() is not threading.main_thread():
        yield watch
        return
    previous: dict[int, Any] = {signum: signal.getsignal(signum) for signum in WATCHED_SIGNALS}

    def handler(signum: int, frame: FrameType | None) -> None:
        before = previous[signum]
        if before == signal.SIG_IGN:
            return
        watch.received.append(signum)
        if before in (signal.SIG_DFL, None):
            watch.default_action.add(signum)
        elif callable(before):
            before(signum, frame)

    for signum in WATCHED_SIGNALS:
        signal.signal(signum, handler)
    try:
        yield watch
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before if before is not None else signal.SIG_DFL)


def deliver_again(stop: StoppedBySignalError) -> None:
    """Let the signal's default action happen now (the handlers are restored by then)."""
    signal.raise_signal(stop.signum)
