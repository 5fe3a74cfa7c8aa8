"""The SQLite journal of every sample received: what makes a re-run resend only what is missing.

It also holds leases: before a client sends a request it reserves the request's sample keys
(owner and expiry) in the same database, so another client - another process on the same
journal - that wants the same samples waits for their answers instead of paying for them
again. A lease ends when its answer is journaled (same transaction), when its owner releases
it (failure, end of the call), when it expires (its owner stopped renewing it), or at once
when its owner is a process on this host that no longer exists (killed).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

JournaledSample = tuple[str, str, int, int]  # text, finish_reason, prompt, completion tokens


@dataclass
class Claim:
    """The outcome of `ResponseJournal.claim` for one group of sample keys."""

    journaled: dict[str, JournaledSample] = field(default_factory=dict)
    leased: bool = False  # the keys not journaled are now reserved for the caller


def new_lease_owner() -> str:
    """A lease owner name: host, process id and a random part (one per `complete` call)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def owner_is_gone(owner: str) -> bool:
    """True when `owner` was a process on this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


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
        self._db.execute(
            """CREATE TABLE IF NOT EXISTS prompts (
                prompt_key TEXT PRIMARY KEY,
                prompt TEXT NOT NULL)"""
        )
        self._db.execute(
            """CREATE TABLE IF NOT EXISTS leases (
                request_key TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                expires_at REAL NOT NULL)"""
        )

    def lookup(self, keys: Sequence[str]) -> dict[str, JournaledSample]:
        """Journaled samples among `keys`: key -> (text, finish_reason, prompt, completion)."""
        found: dict[str, JournaledSample] = {}
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
        """Responses: their samples and accounting rows, in one transaction that also ends
        the samples' leases (whoever held them: the answer is there now)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT OR IGNORE INTO samples VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", samples)
            self._db.executemany("INSERT INTO calls VALUES (?,?,?,?,?,?,?,?,?,?)", calls)
            self._db.executemany("DELETE FROM leases WHERE request_key = ?",
                                 [(row[0],) for row in samples])

    def record_prompts(self, prompts: Mapping[str, str]) -> None:
        """The text of each prompt by its key, so a sample can be traced to what was asked."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR IGNORE INTO prompts VALUES (?,?)",
                                 list(prompts.items()))

    def claim(self, groups: Sequence[Sequence[str]], owner: str, ttl_s: float
              ) -> list[Claim]:
        """For each group of sample keys (one request's samples), in one transaction: the
        samples already journaled, and a lease on the rest for `owner` unless another live
        owner holds one of them."""
        now = time.time()
        claims: list[Claim] = []
        gone: dict[str, bool] = {}

        def live_other(holder: str, expires_at: float) -> bool:
            if holder == owner or expires_at <= now:
                return False
            if holder not in gone:
                gone[holder] = owner_is_gone(holder)
            return not gone[holder]

        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for group in groups:
                claim = Claim(journaled=self.lookup(group))
                rest = [k for k in group if k not in claim.journaled]
                blocked = any(live_other(*holder) for holder in self._holders(rest))
                if rest and not blocked:
                    self._db.executemany(
                        "INSERT OR REPLACE INTO leases VALUES (?,?,?)",
                        [(key, owner, now + ttl_s) for key in rest])
                    claim.leased = True
                claims.append(claim)
        return claims

    def renew(self, owner: str, ttl_s: float) -> None:
        """Extend every lease `owner` holds by `ttl_s` from now."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE leases SET expires_at = ? WHERE owner = ?",
                             (time.time() + ttl_s, owner))

    def release(self, owner: str, keys: Iterable[str] | None = None) -> None:
        """End `owner`'s leases on `keys` (all of them when None)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            if keys is None:
                self._db.execute("DELETE FROM leases WHERE owner = ?", (owner,))
            else:
                self._db.executemany("DELETE FROM leases WHERE owner = ? AND request_key = ?",
                                     [(owner, key) for key in keys])

    def _holders(self, keys: Sequence[str]) -> list[tuple[str, float]]:
        holders: list[tuple[str, float]] = []
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            marks = ",".join("?" * len(part))
            holders += self._db.execute(
                f"SELECT owner, expires_at FROM leases WHERE request_key IN ({marks})",
                part).fetchall()
        return holders

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]

    def close(self) -> None:
        self._db.close()

