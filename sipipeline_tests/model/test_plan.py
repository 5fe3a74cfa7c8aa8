"""The pure cost-plan arithmetic."""

from __future__ import annotations

from sipipeline.model.plan import (
    BASIS_JOURNAL,
    BASIS_PROMPTS,
    PlannedCall,
    PurposeUsage,
    estimate_step,
)
from sipipeline.model.pricing import TokenPrice


def test_without_history_prompts_are_sized_and_completions_at_max_tokens() -> None:
    calls = [PlannedCall(prompt_bytes=400, n=3, max_tokens=10)] * 4
    step = estimate_step("p", calls, max_n_per_request=2, history=None)
    assert step.basis == BASIS_PROMPTS
    assert step.requests == 8  # n=3 in requests of at most 2 samples
    assert step.prompt_tokens == 8 * 100 and step.completion_tokens == 4 * 3 * 10


def test_history_gives_tokens_per_call_and_per_sample() -> None:
    history = PurposeUsage(calls=10, samples=20, prompt_tokens=5000, completion_tokens=600)
    step = estimate_step("p", [PlannedCall(9999, 2, 500)] * 6, 8, history)
    assert step.basis == BASIS_JOURNAL
    assert (step.requests, step.prompt_tokens, step.completion_tokens) == (6, 3000, 360)
    price = TokenPrice(1.0, 2.0)
    assert step.cost_usd(price) == (3000 * 1.0 + 360 * 2.0) / 1e6
    assert step.batch_cost_usd(price) == step.cost_usd(price) / 2


def test_packing_divides_the_requests_not_the_tokens() -> None:
    calls = [PlannedCall(400, 1, 3)] * 20
    alone = estimate_step("p", calls, 8, None)
    packed = estimate_step("p", calls, 8, None, prompts_per_request=8)
    assert (alone.requests, packed.requests) == (20, 3)
    assert (alone.prompt_tokens, alone.completion_tokens) == (
        packed.prompt_tokens, packed.completion_tokens)
