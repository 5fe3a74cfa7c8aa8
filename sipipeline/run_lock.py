"""One `sipipeline run` at a time per Dagster instance: an exclusive lock file in DAGSTER_HOME.

The holder writes what it is doing into the file (pid, round, run id), so a second starter can
say which run it is waiting for or refusing to overlap. The lock is an `fcntl.flock` on an open
file: the kernel releases it when the holder exits, however it exits (even SIGKILL), so a
stale lock never blocks the next run.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import IO

LOCK_FILE_NAME = "sipipeline-run.lock"
HOLDER_READ_ATTEMPTS = 40


class RunLockHeldError(RuntimeError):
    """Another process holds the lock; `holder` is what it wrote about itself."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"another `sipipeline run` holds {path}: {holder}")
        self.path = path
        self.holder = holder


class RunLock:
    """Exclusive lock on `<home>/sipipeline-run.lock`; use as a context manager."""

    def __init__(self, home: Path, *, wait: bool = False) -> None:
        self.path = Path(home) / LOCK_FILE_NAME
        self.wait = wait
        self._handle: IO[str] | None = None

    def holder(self) -> str:
        """What the current holder wrote about itself ('' when it has not said yet)."""
        try:
            return self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return ""

    def _holder_once_written(self) -> str:
        """The holder's text; it writes it right after locking, so give it a moment."""
        for _ in range(HOLDER_READ_ATTEMPTS):
            text = self.holder()
            if text:
                return text
            time.sleep(0.05)
        return "a process that has not said what it runs yet"

    def acquire(self, description: str = "", on_wait=None) -> None:
        """Take the lock and write `description` (default: the pid) into it, or raise
        `RunLockHeldError` when it is held and not waiting.

        When waiting, `on_wait(holder)` is called once before blocking.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder_once_written()
            if not self.wait:
                handle.close()
                raise RunLockHeldError(self.path, holder) from None
            if on_wait is not None:
                on_wait(holder)
            fcntl.flock(handle, fcntl.LOCK_EX)
        self._handle = handle
        self.describe(description or f"pid {os.getpid()}")

    def describe(self, text: str) -> None:
        """Replace what the file says about the holder."""
        if self._handle is None:
            raise RuntimeError("describe() needs the lock")
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(text + "\n")
        self._handle.flush()

    def release(self) -> None:
        if self._handle is None:
            return
        self.describe("")
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
