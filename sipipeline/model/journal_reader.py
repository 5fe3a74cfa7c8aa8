"""Read-only questions to a response journal: one sample's whole record, spend by purpose.

Opened read-only (SQLite URI `mode=ro`), so asking never writes to, locks or creates the journal
a running round is writing. Journals written before prompts were recorded answer without the
prompt text.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class SampleRecord:
    """A journaled sample with the prompt it answered and its share of the call's cost."""

    journal_key: str
    prompt_key: str
    sample_index: int
    endpoint: str
    model: str
    api: str
    purpose: str
    prompt: str | None  # None when the journal predates prompt recording
    completion: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None  # the call's cost split over its samples; None without its call row
    response_id: str
    created_at: float

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PurposeSpend:
    """Calls, tokens and money the journal records for one purpose."""

    purpose: str
    calls: int
    samples: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


def _connect(path: str | Path) -> sqlite3.Connection | None:
    if not Path(path).is_file():
        return None
    return sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=30)


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                      (name,)).fetchone() is not None


def read_samples(path: str | Path, keys: Sequence[str]) -> dict[str, SampleRecord]:
    """The journaled samples among `keys` (missing keys are absent from the result)."""
    db = _connect(path)
    if db is None:
        return {}
    try:
        with_prompts = _has_table(db, "prompts")
        prompt_column = "p.prompt" if with_prompts else "NULL"
        prompt_join = "LEFT JOIN prompts p ON p.prompt_key = s.prompt_key" if with_prompts else ""
        found: dict[str, SampleRecord] = {}
        wanted = [k for k in dict.fromkeys(keys) if k]
        for start in range(0, len(wanted), 500):
            part = wanted[start:start + 500]
            marks = ",".join("?" * len(part))
            rows = db.execute(
                "SELECT s.request_key, s.prompt_key, s.sample_index, s.endpoint, s.model, s.api, "
                f"s.purpose, {prompt_column}, s.text, s.finish_reason, s.prompt_tokens, "
                "s.completion_tokens, (SELECT c.cost_usd / MAX(c.n_samples, 1) FROM calls c "
                "WHERE c.response_id = s.response_id AND c.purpose = s.purpose "
                "AND s.response_id != '' LIMIT 1), "
                f"s.response_id, s.created_at FROM samples s {prompt_join} "
                f"WHERE s.request_key IN ({marks})", part).fetchall()
            for row in rows:
                found[row[0]] = SampleRecord(*row)
        return found
    finally:
        db.close()


def spend_by_purpose(path: str | Path) -> list[PurposeSpend]:
    """What the journal's calls cost, per purpose (empty without a journal)."""
    db = _connect(path)
    if db is None:
        return []
    try:
        rows = db.execute(
            "SELECT purpose, COUNT(*), SUM(n_samples), SUM(prompt_tokens), "
            "SUM(completion_tokens), SUM(cost_usd) FROM calls GROUP BY purpose "
            "ORDER BY purpose").fetchall()
        return [PurposeSpend(p, int(c), int(n or 0), int(pt or 0), int(ct or 0), float(u or 0))
                for p, c, n, pt, ct, u in rows]
    finally:
        db.close()
