"""Prices, call costs and the budget's reserve / release / spend bookkeeping."""

from __future__ import annotations

import pytest

from sipipeline.model.pricing import Budget, TokenPrice, cost_usd, estimate_prompt_tokens
from sipipeline.model.types import CompletionRequest, ModelAccessError, SamplingParams


def test_cost() -> None:
    assert cost_usd(TokenPrice(1.0, 2.0, 0.5), 1_000_000, 1_000_000, 500_000) == 2.75
    assert cost_usd(None, 10, 10) == 0.0


def test_prompt_estimate_is_high() -> None:
    assert estimate_prompt_tokens("") == 16
    assert estimate_prompt_tokens("x" * 300) == 116


def test_budget_reserve_release_spend() -> None:
    price = TokenPrice(prompt=1_000_000.0, completion=1_000_000.0)  # $1 per token
    request = CompletionRequest("", SamplingParams(max_tokens=4))
    budget = Budget(limit_usd=50.0, price=price)
    first = budget.reserve(request, n=2)  # 16 prompt + 8 completion tokens
    assert first == 24.0 and budget.reserved_usd == 24.0
    second = budget.reserve(request, n=2)
    with pytest.raises(ModelAccessError, match="budget") as caught:
        budget.reserve(request, n=1)
    assert not caught.value.retryable
    budget.release(first)
    budget.spend(3.0)
    budget.release(second)
    assert (budget.spent_usd, budget.reserved_usd) == (3.0, 0.0)
    assert budget.reserve(request, n=2) == 24.0


def test_no_limit_reserves_nothing() -> None:
    budget = Budget(limit_usd=None, price=None)
    assert budget.reserve(CompletionRequest("x", SamplingParams(max_tokens=9)), n=5) == 0.0
    budget.spend(0.5)
    assert budget.spent_usd == 0.5
