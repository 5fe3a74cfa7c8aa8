"""The yield guard: stop a round's generation when its first requests yield almost nothing.

A model or prompt that produces garbage (no list, copies of the examples, refusals) would
spend the whole round's budget for nothing. The guard looks at the first K generation
requests: when the share of their candidate records that were accepted (heuristics and
ROUGE-L novelty passed) is below the threshold, the round keeps what those requests gave and
sends no more. The decision depends only on the first K answers, which are journaled, so a
re-run decides the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import pandas as pd

from sipipeline.method.vocabulary import CandidateStatus

T = TypeVar("T")  # a request
A = TypeVar("A")  # an answer


@dataclass(frozen=True)
class YieldCheck:
    """The guard's look at the first requests, and whether the round stops there."""

    checked_requests: int
    skipped_requests: int
    candidates: int
    accepted: int
    accepted_share: float
    threshold: float
    stopped: bool

    def as_metadata(self) -> dict[str, float | int | bool]:
        return {"checked_requests": self.checked_requests,
                "skipped_requests": self.skipped_requests, "candidates": self.candidates,
                "accepted": self.accepted, "accepted_share": self.accepted_share,
                "threshold": self.threshold, "stopped": self.stopped}

    def message(self) -> str:
        verdict = ("stopped generating: the remaining requests were not sent" if self.stopped
                   else "generation goes on")
        return (f"yield guard: {self.accepted} of {self.candidates} candidates from the first "
                f"{self.checked_requests} generation requests were accepted (share "
                f"{self.accepted_share:.3f}, threshold {self.threshold:.3f}); {verdict}"
                + (f" ({self.skipped_requests} skipped)" if self.stopped else ""))


@dataclass(frozen=True)
class YieldGuard:
    """Check the first `first_requests` requests against `min_accepted_share` (0: off)."""

    first_requests: int
    min_accepted_share: float

    def applies_to(self, num_requests: int) -> bool:
        """True when there are requests after the first K that the guard could save."""
        return 0 < self.first_requests < num_requests

    def check(self, generated: pd.DataFrame, num_requests: int) -> YieldCheck:
        """Decide from the candidates of the first K requests (`generated`)."""
        candidates = len(generated)
        accepted = int((generated["status"] == CandidateStatus.ACCEPTED).sum())
        share = accepted / candidates if candidates else 0.0
        stopped = share < self.min_accepted_share
        return YieldCheck(
            checked_requests=self.first_requests,
            skipped_requests=num_requests - self.first_requests if stopped else 0,
            candidates=candidates, accepted=accepted, accepted_share=share,
            threshold=self.min_accepted_share, stopped=stopped)


@dataclass(frozen=True)
class GuardedGeneration:
    """What a guarded generation produced: the candidates, how many requests were sent, and
    the guard's check (None when the round had no more than K requests)."""

    generated: pd.DataFrame
    requests_sent: int
    check: YieldCheck | None


def generate_guarded(requests: Sequence[T], guard: YieldGuard,
                     complete: Callable[[Sequence[T]], list[A]],
                     candidates: Callable[[int, list[A]], pd.DataFrame]) -> GuardedGeneration:
    """Send `requests` through `complete`, the first K alone when the guard applies.

    `candidates(n, answers)` builds the candidate table of the first n requests from their
    answers. When the first K fall short, the rest are never sent; otherwise the rest go out
    in one more call and the table covers every request, exactly as without the guard.
    """
    if not guard.applies_to(len(requests)):
        answers = complete(requests)
        return GuardedGeneration(candidates(len(requests), answers), len(requests), None)
    first = guard.first_requests
    answers = complete(requests[:first])
    check = guard.check(candidates(first, answers), len(requests))
    if check.stopped:
        return GuardedGeneration(candidates(first, answers), first, check)
    answers = answers + complete(requests[first:])
    return GuardedGeneration(candidates(len(requests), answers), len(requests), check)
