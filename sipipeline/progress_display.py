"""What `sipipeline run` shows while a round runs: a progress bar per model-calling stage on a
terminal, plain periodic lines otherwise (logs, CI, pipes).

Bars are drawn with `rich` (already installed with Dagster, kept up to date, thread-safe, and
able to keep log lines printed above the bars). The reports come from the model client through
`sipipeline.model.progress.listening`, on the client's loop thread.
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from sipipeline.model.progress import LOG_INTERVAL_S, Progress, Throttled, format_progress


class PlainLines:
    """One line per stage at most every `interval_s`, and one when the stage is done."""

    def __init__(self, stream: TextIO, interval_s: float = LOG_INTERVAL_S) -> None:
        self._stream = stream
        self._interval_s = interval_s
        self._throttles: dict[str, Throttled] = {}
        self._lock = threading.Lock()
        self.round_key = ""

    def __enter__(self) -> PlainLines:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _print(self, progress: Progress) -> None:
        with self._lock:
            self._stream.write(f"sipipeline: {self.round_key} {format_progress(progress)}\n")
            self._stream.flush()

    def __call__(self, progress: Progress) -> None:
        name = f"{self.round_key}/{progress.purpose}"
        with self._lock:
            throttle = self._throttles.setdefault(name, Throttled(self._print, self._interval_s))
        throttle(progress)


class Bars:
    """A rich progress bar per stage of each round."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import (
            Progress as RichProgress,
        )

        self._bars = RichProgress(
            TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"), TimeRemainingColumn(), TimeElapsedColumn(),
            console=Console(file=stream), redirect_stdout=True, redirect_stderr=True)
        self._tasks: dict[str, object] = {}
        self._lock = threading.Lock()
        self.round_key = ""

    def __enter__(self) -> Bars:
        self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bars.stop()

    def __call__(self, progress: Progress) -> None:
        name = f"{self.round_key} {progress.purpose}".strip()
        detail = (f"{progress.from_journal} from journal · "
                  f"{progress.prompt_tokens + progress.completion_tokens:,} tok · "
                  f"${progress.cost_usd:.4f}")
        with self._lock:
            task = self._tasks.get(name)
            if task is None:
                task = self._bars.add_task(name, total=progress.total, detail=detail)
                self._tasks[name] = task
        self._bars.update(task, total=progress.total, completed=progress.done, detail=detail)


def progress_display(stream: TextIO | None = None,
                     interval_s: float = LOG_INTERVAL_S) -> Bars | PlainLines:
    """Bars on a terminal, plain lines when the output is not one."""
    stream = stream or sys.stdout
    is_terminal = getattr(stream, "isatty", lambda: False)()
    return Bars(stream) if is_terminal else PlainLines(stream, interval_s)
