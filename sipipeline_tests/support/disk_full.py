"""Simulate a disk that fills up while a file is being written: half the bytes land, then
ENOSPC. Patches only the write paths named, so the rest of the test runs normally."""

from __future__ import annotations

import errno
import io
import pathlib
from collections.abc import Callable
from pathlib import Path

import pytest


def disk_full_error() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


class _HalfWriter(io.RawIOBase):
    """A write handle that writes the first half of what it is given, then fails."""

    def __init__(self, handle) -> None:
        self._handle = handle

    def write(self, data) -> int:
        self._handle.write(data[: len(data) // 2])
        self._handle.flush()
        raise disk_full_error()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self._handle.close()

    def close(self) -> None:
        self._handle.close()


def fill_disk_on_open(monkeypatch: pytest.MonkeyPatch, name_contains: str) -> list[Path]:
    """Writes through `Path.open` to files whose name contains `name_contains` fail midway.

    Returns the list of paths that were opened that way (to check a write was attempted).
    """
    real_open = pathlib.Path.open
    hit: list[Path] = []

    def open_(self, mode="r", *args, **kwargs):
        handle = real_open(self, mode, *args, **kwargs)
        if name_contains in self.name and any(flag in mode for flag in "wax"):
            hit.append(Path(self))
            return _HalfWriter(handle)
        return handle

    monkeypatch.setattr(pathlib.Path, "open", open_)
    return hit


def fail_midway(write_bytes: Callable[[Path], bytes]) -> Callable:
    """A stand-in for a library writer `f(obj, path, ...)`: writes half of what
    `write_bytes(path)` returns to `path`, then fails as a full disk does."""

    def writer(_obj, path, *args, **kwargs):
        data = write_bytes(Path(path))
        with open(path, "wb") as handle:
            handle.write(data[: len(data) // 2])
        raise disk_full_error()

    return writer
