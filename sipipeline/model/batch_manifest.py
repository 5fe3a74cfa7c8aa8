"""The batch manifest, in the journal's SQLite database: what was sent in which batch.

Every change is committed before the step that depends on it, so a process killed at any
moment finds on restart which requests are in a live batch (never sent again), which batch a
file or a `POST /batches` belonged to (found again by name or metadata), and which batches
still need downloading. The samples themselves go to the journal's `samples` table as usual.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sipipeline.model.journal import owner_is_gone


class Phase(str, Enum):
    """How far sipipeline got with one batch (its own progress, not the API's status)."""

    PREPARED = "prepared"      # lines written here, nothing sent
    UPLOADING = "uploading"    # the upload may or may not have reached the endpoint
    UPLOADED = "uploaded"      # input file id known
    CREATING = "creating"      # POST /batches may or may not have created it
    SUBMITTED = "submitted"    # batch id known: the endpoint works on it
    RECONCILED = "reconciled"  # output and error files read, every request accounted for


class Outcome(str, Enum):
    """What became of one request line in one batch."""

    PENDING = "pending"            # the batch has not ended (or is not read yet)
    ANSWERED = "answered"          # its samples are journaled
    ERROR = "error"                # an error-file line (or a non-200 output line)
    MISSING = "missing"            # the batch ended without a line for it (expiry, omission)
    NOT_RUN = "not_run"            # the batch failed or was cancelled before running it


#: API statuses after which a batch changes no more.
TERMINAL_STATES = frozenset({"completed", "expired", "failed", "cancelled"})
LIVE_PHASES = (Phase.PREPARED, Phase.UPLOADING, Phase.UPLOADED, Phase.CREATING,
               Phase.SUBMITTED)


@dataclass
class BatchRow:
    local_id: str
    purpose: str
    phase: Phase
    state: str
    input_file_id: str
    batch_id: str
    output_file_id: str
    error_file_id: str
    errors: str
    counts: dict[str, int]
    run_id: str
    partition_key: str
    created_at: float


@dataclass(frozen=True)
class RequestLine:
    custom_id: str
    prompt_digest: str
    sample_indices: tuple[int, ...]
    line: str
    extra_stops: tuple[str, ...] = ()  # stops beyond the endpoint's limit, applied here


class BatchManifest:
    """Tables `batch_jobs` and `batch_requests` next to the journal's tables."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, timeout=60, check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            """CREATE TABLE IF NOT EXISTS batch_jobs (
                local_id TEXT PRIMARY KEY, purpose TEXT NOT NULL, endpoint TEXT NOT NULL,
                model TEXT NOT NULL, phase TEXT NOT NULL, state TEXT NOT NULL,
                input_file_id TEXT NOT NULL, batch_id TEXT NOT NULL,
                output_file_id TEXT NOT NULL, error_file_id TEXT NOT NULL,
                errors TEXT NOT NULL, counts TEXT NOT NULL, run_id TEXT NOT NULL,
                partition_key TEXT NOT NULL, created_at REAL NOT NULL,
                updated_at REAL NOT NULL, owner TEXT NOT NULL, owner_until REAL NOT NULL)""")
        self._db.execute(
            """CREATE TABLE IF NOT EXISTS batch_requests (
                local_id TEXT NOT NULL, custom_id TEXT NOT NULL, prompt_digest TEXT NOT NULL,
                sample_indices TEXT NOT NULL, line TEXT NOT NULL, extra_stops TEXT NOT NULL,
                outcome TEXT NOT NULL,
                reason TEXT NOT NULL, PRIMARY KEY (local_id, custom_id))""")
        self._db.execute("CREATE INDEX IF NOT EXISTS batch_requests_custom_id "
                         "ON batch_requests (custom_id)")

    # ------------------------------------------------------------------ writes
    def add_batch(self, local_id: str, purpose: str, endpoint: str, model: str,
                  lines: Sequence[RequestLine], run_id: str, partition_key: str,
                  owner: str, ttl_s: float) -> list[RequestLine]:
        """A prepared batch (owned by `owner`) of those `lines` no live batch holds, in one
        transaction before anything is sent; returns the lines it holds (maybe none: then no
        batch is added). Two processes preparing the same requests cannot both send them."""
        now = time.time()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            live = self.live_custom_ids([line.custom_id for line in lines])
            lines = [line for line in lines if line.custom_id not in live]
            if not lines:
                return []
            self._db.execute(
                "INSERT INTO batch_jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (local_id, purpose, endpoint, model, Phase.PREPARED.value, "", "", "", "", "",
                 "", "{}", run_id, partition_key, now, now, owner, now + ttl_s))
            self._db.executemany(
                "INSERT INTO batch_requests VALUES (?,?,?,?,?,?,?,?)",
                [(local_id, r.custom_id, r.prompt_digest, json.dumps(list(r.sample_indices)),
                  r.line, json.dumps(list(r.extra_stops)), Outcome.PENDING.value, "")
                 for r in lines])
        return lines

    def own(self, local_id: str, owner: str, ttl_s: float) -> bool:
        """Take (or renew) the right to move a batch on; False while another owner that is
        alive holds it (an owner's process that is gone, or a lapsed claim, loses it)."""
        now = time.time()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT owner, owner_until FROM batch_jobs "
                                   "WHERE local_id = ?", (local_id,)).fetchone()
            if row is None:
                return False
            holder, until = row
            if holder and holder != owner and until > now and not owner_is_gone(holder):
                return False
            self._db.execute("UPDATE batch_jobs SET owner = ?, owner_until = ? "
                             "WHERE local_id = ?", (owner, now + ttl_s, local_id))
            return True

    def update(self, local_id: str, **fields: Any) -> None:
        """Set columns of one batch (phase, state, file ids, errors, counts)."""
        values = {name: (value.value if isinstance(value, Enum)
                         else json.dumps(value) if isinstance(value, dict) else value)
                  for name, value in fields.items()}
        values["updated_at"] = time.time()
        assignments = ", ".join(f"{name} = ?" for name in values)
        with self._db:
            self._db.execute(f"UPDATE batch_jobs SET {assignments} WHERE local_id = ?",
                             (*values.values(), local_id))

    def set_outcomes(self, local_id: str, outcomes: Iterable[tuple[str, Outcome, str]],
                     phase: Phase | None = None) -> None:
        """(custom_id, outcome, reason) of lines of one batch; optionally its new phase."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "UPDATE batch_requests SET outcome = ?, reason = ? "
                "WHERE local_id = ? AND custom_id = ?",
                [(outcome.value, reason, local_id, custom_id)
                 for custom_id, outcome, reason in outcomes])
            if phase is not None:
                self._db.execute("UPDATE batch_jobs SET phase = ?, updated_at = ? "
                                 "WHERE local_id = ?", (phase.value, time.time(), local_id))

    def disown(self, owner: str) -> None:
        """Give up every claim of `owner` (its client is closing)."""
        with self._db:
            self._db.execute("UPDATE batch_jobs SET owner = '', owner_until = 0 "
                             "WHERE owner = ?", (owner,))

    # ------------------------------------------------------------------ reads
    def batches(self, *, live_only: bool = False, purpose: str | None = None
                ) -> list[BatchRow]:
        query = ("SELECT local_id, purpose, phase, state, input_file_id, batch_id, "
                 "output_file_id, error_file_id, errors, counts, run_id, partition_key, "
                 "created_at FROM batch_jobs WHERE 1=1")
        args: list[Any] = []
        if live_only:
            query += f" AND phase IN ({','.join('?' * len(LIVE_PHASES))})"
            args += [p.value for p in LIVE_PHASES]
        if purpose is not None:
            query += " AND purpose = ?"
            args.append(purpose)
        rows = self._db.execute(query + " ORDER BY created_at, local_id", args).fetchall()
        return [BatchRow(r[0], r[1], Phase(r[2]), r[3], r[4], r[5], r[6], r[7], r[8],
                         json.loads(r[9]), r[10], r[11], r[12]) for r in rows]

    def lines(self, local_id: str) -> list[RequestLine]:
        rows = self._db.execute(
            "SELECT custom_id, prompt_digest, sample_indices, line, extra_stops "
            "FROM batch_requests WHERE local_id = ? ORDER BY rowid", (local_id,)).fetchall()
        return [RequestLine(c, d, tuple(json.loads(s)), line, tuple(json.loads(e)))
                for c, d, s, line, e in rows]

    def outcomes(self, local_id: str) -> dict[str, tuple[Outcome, str]]:
        rows = self._db.execute(
            "SELECT custom_id, outcome, reason FROM batch_requests WHERE local_id = ?",
            (local_id,)).fetchall()
        return {c: (Outcome(o), reason) for c, o, reason in rows}

    def live_custom_ids(self, custom_ids: Sequence[str]) -> set[str]:
        """Those of `custom_ids` in a batch not reconciled yet: never to be sent again."""
        return {row[0] for row in self._select(
            custom_ids, "SELECT r.custom_id FROM batch_requests r JOIN batch_jobs b "
            "ON r.local_id = b.local_id WHERE b.phase != ? AND r.custom_id IN ({marks})",
            (Phase.RECONCILED.value,))}

    def error_history(self, custom_ids: Sequence[str]) -> dict[str, list[str]]:
        """Why each of `custom_ids` went unanswered in ended batches (an error line, or no
        line at all), oldest first: what the retry budget counts."""
        history: dict[str, list[str]] = {}
        for custom_id, reason in self._select(
                custom_ids, "SELECT r.custom_id, r.reason FROM batch_requests r JOIN "
                "batch_jobs b ON r.local_id = b.local_id WHERE r.outcome IN (?, ?) AND "
                "r.custom_id IN ({marks}) ORDER BY b.created_at",
                (Outcome.ERROR.value, Outcome.MISSING.value)):
            history.setdefault(custom_id, []).append(reason)
        return history

    def _select(self, keys: Sequence[str], template: str, fixed: tuple) -> list[tuple]:
        found: list[tuple] = []
        for start in range(0, len(keys), 500):
            part = list(keys[start:start + 500])
            found += self._db.execute(template.format(marks=",".join("?" * len(part))),
                                      (*fixed, *part)).fetchall()
        return found

    def close(self) -> None:
        self._db.close()
