"""The SQLite journal of every sample received: what makes a re-run resend only what is missing."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path


class ResponseJournal:
    """SQLite journal of every sample received, written the moment it arrives.

    WAL mode: readers never block the writer, several processes may share one file, and a
    committed row survives the process being killed (`synchronous=FULL` also survives power
    loss, at the price of an fsync per response).
    """

    def __init__(self, path: str, synchronous: str = "NORMAL") -> None:
        if synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"journal synchronous mode must be NORMAL, FULL or EXTRA, "
                             f"not {synchronous!r}")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=60, check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute(
            """CREATE TABLE IF NOT EXISTS samples (
                request_key TEXT PRIMARY KEY,
                prompt_key TEXT NOT NULL,
                sample_index INTEGER NOT NULL,
                endpoint TEXT NOT NULL,
                model TEXT NOT NULL,
                api TEXT NOT NULL,
                purpose TEXT NOT NULL,
                text TEXT NOT NULL,
                finish_reason TEXT NOT NULL,
                prompt_tokens INTEGER NOT NULL,
                completion_tokens INTEGER NOT NULL,
                response_id TEXT NOT NULL,
                created_at REAL NOT NULL)"""
        )
        self._db.execute(
            """CREATE TABLE IF NOT EXISTS calls (
                response_id TEXT NOT NULL,
                purpose TEXT NOT NULL,
                endpoint TEXT NOT NULL,
                model TEXT NOT NULL,
                n_samples INTEGER NOT NULL,
                prompt_tokens INTEGER NOT NULL,
                completion_tokens INTEGER NOT NULL,
                cached_tokens INTEGER NOT NULL,
                cost_usd REAL NOT NULL,
                created_at REAL NOT NULL)"""
        )

    def lookup(self, keys: Sequence[str]) -> dict[str, tuple[str, str, int, int]]:
        """Journaled samples among `keys`: key -> (text, finish_reason, prompt, completion)."""
        found: dict[str, tuple[str, str, int, int]] = {}
        chunk = 500
        for start in range(0, len(keys), chunk):
            part = keys[start:start + chunk]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(
                "SELECT request_key, text, finish_reason, prompt_tokens, completion_tokens "
                f"FROM samples WHERE request_key IN ({marks})", part).fetchall()
            for key, text, finish, p_tokens, c_tokens in rows:
                found[key] = (text, finish, p_tokens, c_tokens)
        return found

    def record(self, samples: Sequence[tuple], calls: Sequence[tuple]) -> None:
        """Responses: their samples and accounting rows, in one transaction."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT OR IGNORE INTO samples VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", samples)
            self._db.executemany("INSERT INTO calls VALUES (?,?,?,?,?,?,?,?,?,?)", calls)

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]

    def close(self) -> None:
        self._db.close()

