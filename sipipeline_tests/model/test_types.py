"""Typed usage: counted per purpose, added up, shown as plain numbers."""

from __future__ import annotations

from sipipeline.model.types import Usage


def test_usage_adds_up_and_converts() -> None:
    total = Usage(requests=2, samples=4, cost_usd=0.5) + Usage(requests=1, retries=3,
                                                                 cost_usd=0.25)
    assert (total.requests, total.samples, total.retries, total.cost_usd) == (3, 4, 3, 0.75)
    assert total.as_dict() == {"requests": 3, "samples": 4, "journal_hits": 0,
                               "prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0,
                               "retries": 3, "cost_usd": 0.75}
