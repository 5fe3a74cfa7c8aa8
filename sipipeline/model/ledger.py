"""One budget across assets, rounds and concurrent runs: a ledger in the journal database.

Every request reserves its worst-case cost in the `budget_ledger` table before it is sent (one
transaction that also checks spent + reserved + this against the limit, so clients in other
processes cannot together overshoot), and settles it with the answer's real cost (same row, so
the money is never momentarily neither reserved nor spent) or releases it on failure.
Reservations of a process that no longer runs (killed) and reservations older than any request
can take are released by the next reservation: a crash never locks money away.

When the ledger is first made in a journal that already holds priced calls, their cost is
entered as spent, so the budget caps what this storage has spent in total.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from sipipeline.model.journal import new_lease_owner, owner_is_gone
from sipipeline.model.pricing import TokenPrice, cost_usd, estimate_prompt_tokens
from sipipeline.model.types import CompletionRequest, ModelAccessError

BUDGET_ENV = "SIPIPELINE_BUDGET_USD"
#: A reservation older than this belongs to a request that can no longer be waiting.
STALE_RESERVATION_S = 3600.0
BASELINE_OWNER = "journal-before-ledger"


class BudgetExceededError(ModelAccessError):
    """The budget cannot cover the next request (or round); running again cannot help."""


@dataclass(frozen=True)
class LedgerStatus:
    spent_usd: float
    reserved_usd: float
    limit_usd: float

    def left_usd(self) -> float:
        return self.limit_usd - self.spent_usd - self.reserved_usd

    def describe(self) -> str:
        return (f"spent ${self.spent_usd:.4f}, reserved ${self.reserved_usd:.4f} by requests "
                f"in flight, budget ${self.limit_usd:.4f}")


class BudgetLedger:
    """The `budget_ledger` table of one journal database, against one limit."""

    def __init__(self, journal_path: str, limit_usd: float) -> None:
        self.limit_usd = limit_usd
        self.path = journal_path
        self._db = sqlite3.connect(journal_path, timeout=60, check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            exists = self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'budget_ledger'").fetchone()
            if not exists:
                self._db.execute(
                    """CREATE TABLE budget_ledger (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        owner TEXT NOT NULL,
                        reserved_usd REAL NOT NULL,
                        spent_usd REAL NOT NULL,
                        created_at REAL NOT NULL)""")
                has_calls = self._db.execute(
                    "SELECT 1 FROM sqlite_master WHERE name = 'calls'").fetchone()
                before = (self._db.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM calls")
                          .fetchone()[0] if has_calls else 0.0)
                if before:
                    self._db.execute("INSERT INTO budget_ledger VALUES (NULL, ?, 0, ?, ?)",
                                     (BASELINE_OWNER, before, time.time()))

    def status(self) -> LedgerStatus:
        """Spent and reserved now (stale reservations released first)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._release_stale()
            return self._status()

    def reserve(self, owner: str, amount_usd: float, what: str = "the next request") -> int:
        """Reserve `amount_usd` for `owner`; raise BudgetExceededError when it does not fit."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._release_stale()
            status = self._status()
            if amount_usd > status.left_usd() + 1e-12:
                raise BudgetExceededError(
                    f"stopping before sending: {what} may cost up to ${amount_usd:.4f}, more "
                    f"than is left of the budget ({status.describe()}); everything received "
                    f"is journaled, raise the budget ({BUDGET_ENV} or budget_usd) and run "
                    "again to continue")
            cursor = self._db.execute("INSERT INTO budget_ledger VALUES (NULL, ?, ?, 0, ?)",
                                      (owner, amount_usd, time.time()))
            return int(cursor.lastrowid)

    def settle(self, entry: int, spent_usd: float) -> None:
        """The request's answer cost `spent_usd`: its reservation becomes that spend."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "UPDATE budget_ledger SET reserved_usd = 0, spent_usd = ? WHERE id = ?",
                (spent_usd, entry))

    def release(self, entry: int) -> None:
        """The request got no answer to pay for: its reservation ends."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM budget_ledger WHERE id = ? AND spent_usd = 0",
                             (entry,))

    def close(self) -> None:
        self._db.close()

    def _status(self) -> LedgerStatus:
        spent, reserved = self._db.execute(
            "SELECT COALESCE(SUM(spent_usd), 0), COALESCE(SUM(reserved_usd), 0) "
            "FROM budget_ledger").fetchone()
        return LedgerStatus(spent, reserved, self.limit_usd)

    def _release_stale(self) -> None:
        cutoff = time.time() - STALE_RESERVATION_S
        rows = self._db.execute(
            "SELECT id, owner, created_at FROM budget_ledger WHERE reserved_usd > 0").fetchall()
        gone: dict[str, bool] = {}
        stale = []
        for entry, owner, created_at in rows:
            if owner not in gone:
                gone[owner] = owner_is_gone(owner)
            if gone[owner] or created_at < cutoff:
                stale.append((entry,))
        self._db.executemany("DELETE FROM budget_ledger WHERE id = ?", stale)


class LedgerBudget:
    """The client's budget when a limit is set: every request goes through the ledger.

    Same calls as `pricing.Budget` (reserve / release / settle), so the client does not care
    which one it has.
    """

    def __init__(self, ledger: BudgetLedger, price: TokenPrice | None) -> None:
        self.ledger = ledger
        self.price = price
        self.owner = new_lease_owner()

    def reserve(self, request: CompletionRequest, n: int) -> int:
        worst = cost_usd(self.price, estimate_prompt_tokens(request.prompt),
                         request.params.max_tokens * n)
        return self.ledger.reserve(self.owner, worst)

    def release(self, reservation: int) -> None:
        self.ledger.release(reservation)

    def settle(self, reservation: int, amount_usd: float) -> None:
        self.ledger.settle(reservation, amount_usd)

    def check_can_cover(self, projected_usd: float, what: str) -> None:
        """Raise before anything is sent when `projected_usd` does not fit what is left."""
        status = self.ledger.status()
        if projected_usd > status.left_usd() + 1e-12:
            raise BudgetExceededError(
                f"stopping before sending: {what} is expected to cost ${projected_usd:.4f}, "
                f"more than is left of the budget ({status.describe()}); raise the budget "
                f"({BUDGET_ENV} or budget_usd) to continue")


def budget_from_env() -> float | None:
    """SIPIPELINE_BUDGET_USD as a number, None when unset; a bad value fails clearly."""
    import os

    value = os.environ.get(BUDGET_ENV, "").strip()
    if not value:
        return None
    try:
        budget = float(value)
    except ValueError:
        raise ModelAccessError(f"{BUDGET_ENV} must be a number of US dollars, got {value!r}"
                               ) from None
    if budget < 0:
        raise ModelAccessError(f"{BUDGET_ENV} must not be negative, got {value!r}")
    return budget
