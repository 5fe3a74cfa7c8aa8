"""The cost plan: expected requests, tokens and dollars of model calls, before they are made.

Pure arithmetic over what is known: the journal's usage of earlier calls of the same purpose
(tokens per request and per sample as they really were) when there is any, else the prompts'
sizes and `max_tokens` (an upper bound on completions). Each estimate says which it used.
Batch prices are half the online ones (the OpenAI Batch API's discount).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sipipeline.model.pricing import TokenPrice, cost_usd

BASIS_JOURNAL = "journal"
BASIS_PROMPTS = "prompt sizes and max_tokens"
BATCH_DISCOUNT = 0.5
#: Tokens per prompt byte when nothing better is known (English text runs about 4 bytes/token).
BYTES_PER_TOKEN = 4.0


@dataclass(frozen=True)
class PurposeUsage:
    """What the journaled calls of one purpose used, in total."""

    calls: int
    samples: int
    prompt_tokens: int
    completion_tokens: int

    def prompt_tokens_per_call(self) -> float:
        return self.prompt_tokens / self.calls if self.calls else 0.0

    def completion_tokens_per_sample(self) -> float:
        return self.completion_tokens / self.samples if self.samples else 0.0


@dataclass(frozen=True)
class PlannedCall:
    """One prompt to be asked: its size in bytes, samples wanted, and their max_tokens."""

    prompt_bytes: int
    n: int
    max_tokens: int


@dataclass(frozen=True)
class StepEstimate:
    """The expected model use of one step (purpose) of a round."""

    purpose: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    basis: str

    def cost_usd(self, price: TokenPrice | None) -> float:
        return cost_usd(price, self.prompt_tokens, self.completion_tokens)

    def batch_cost_usd(self, price: TokenPrice | None) -> float:
        return self.cost_usd(price) * BATCH_DISCOUNT


def estimate_step(purpose: str, calls: Sequence[PlannedCall], max_n_per_request: int,
                  history: PurposeUsage | None, prompts_per_request: int = 1) -> StepEstimate:
    """Requests and tokens of asking `calls`, from `history` when it has samples.

    Each prompt is billed for its tokens whether or not it shares a request with others
    (`prompts_per_request`, packing), and the journal records usage per prompt, so tokens are
    counted per prompt and only the request count is divided by the packing.
    """
    asked = sum(math.ceil(call.n / max_n_per_request) for call in calls)
    requests = math.ceil(asked / max(1, prompts_per_request))
    samples = sum(call.n for call in calls)
    if history is not None and history.calls and history.samples:
        return StepEstimate(purpose, requests,
                            round(asked * history.prompt_tokens_per_call()),
                            round(samples * history.completion_tokens_per_sample()),
                            BASIS_JOURNAL)
    prompt_tokens = sum(math.ceil(call.prompt_bytes / BYTES_PER_TOKEN)
                        * math.ceil(call.n / max_n_per_request) for call in calls)
    completion_tokens = sum(call.n * call.max_tokens for call in calls)
    return StepEstimate(purpose, requests, prompt_tokens, completion_tokens, BASIS_PROMPTS)


def journal_usage(journal_path: str | Path) -> dict[str, PurposeUsage]:
    """Usage by purpose of every call in a journal (empty when there is no journal yet)."""
    path = Path(journal_path)
    if not path.is_file():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
    try:
        exists = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'calls'").fetchone()
        if not exists:
            return {}
        rows = db.execute(
            "SELECT purpose, COUNT(*), SUM(n_samples), SUM(prompt_tokens), "
            "SUM(completion_tokens) FROM calls GROUP BY purpose").fetchall()
    finally:
        db.close()
    return {purpose: PurposeUsage(int(calls), int(samples or 0), int(prompt or 0),
                                  int(completion or 0))
            for purpose, calls, samples, prompt, completion in rows}
