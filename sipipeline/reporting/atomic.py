"""Whole-or-nothing file writes for reports and exports.

Every file is written under a temporary name in its own folder and renamed over the target
only once complete (a rename within one file system is atomic), so a full disk or a crash
leaves the previous file or none, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path`, on error it goes.

    The temporary name is unique, starts with a dot and ends in ".partial", so globs of the
    real files never see it; the caller creates it (so it gets the usual permissions).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{secrets.token_hex(6)}.partial")
    try:
        yield partial
        with partial.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def write_with(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call `write(temporary_path)` and move the result to `path` (see `replacing`)."""
    with replacing(path) as partial:
        write(partial)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """`Path.write_text` (UTF-8, "\\n" line ends), all or nothing."""

    def write(partial: Path) -> None:
        with partial.open("w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)

    return write_with(path, write)
