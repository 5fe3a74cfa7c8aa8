"""The yield guard over plain callables: what is sent, what is kept, what is decided."""

from __future__ import annotations

import pandas as pd
import pytest

from sipipeline.method import rounds
from sipipeline.method.seeds import load_seed_tasks
from sipipeline.method.yield_guard import YieldGuard, generate_guarded
from sipipeline.paths import DEFAULT_SEED_FILE

SEEDS = load_seed_tasks(DEFAULT_SEED_FILE)
GOOD = ("Describe the migration of monarch butterflies to a child.\n"
        "10. Explain how a lighthouse keeper's work changed over a century.")
GARBAGE = "Draw it.\n10. Plot a graph of the data in the file."  # both rejected


def _run(answer_of, num_prompts: int, guard: YieldGuard):
    planned = rounds.plan_generation_prompts(SEEDS, 1, num_prompts, 8, 2, random_seed=0)
    calls: list[list[int]] = []

    def complete(part):
        calls.append(list(part))
        return [rounds.ModelText(answer_of(index), "stop") for index in part]

    def candidates(sent, answers):
        return rounds.generated_candidates(planned[:sent], answers, SEEDS, 1, "m", 0.7)

    return generate_guarded(list(range(num_prompts)), guard, complete, candidates), calls


def test_a_low_yield_stops_after_the_first_requests_and_keeps_their_candidates():
    result, calls = _run(lambda index: GARBAGE, 10, YieldGuard(3, 0.05))
    assert calls == [[0, 1, 2]]
    assert result.requests_sent == 3
    assert result.check.stopped and result.check.skipped_requests == 7
    assert result.check.accepted == 0 and result.check.accepted_share == 0.0
    assert len(result.generated) == 6
    assert result.generated["request_id"].nunique() == 3
    assert "stopped generating" in result.check.message()


def test_a_good_yield_sends_the_rest_and_gives_the_unguarded_result():
    answer_of = lambda index: GOOD if index % 2 else GARBAGE  # noqa: E731
    guarded, calls = _run(answer_of, 6, YieldGuard(2, 0.2))
    assert calls == [[0, 1], [2, 3, 4, 5]]
    assert not guarded.check.stopped and guarded.check.skipped_requests == 0
    assert guarded.check.accepted_share == pytest.approx(2 / 4)
    unguarded, calls = _run(answer_of, 6, YieldGuard(0, 0.2))
    assert calls == [[0, 1, 2, 3, 4, 5]] and unguarded.check is None
    pd.testing.assert_frame_equal(guarded.generated, unguarded.generated)


def test_the_guard_needs_requests_after_the_first_k_to_act():
    result, calls = _run(lambda index: GARBAGE, 3, YieldGuard(3, 0.5))
    assert calls == [[0, 1, 2]] and result.check is None and result.requests_sent == 3
    assert not YieldGuard(0, 0.5).applies_to(100)
    assert YieldGuard(4, 0.5).applies_to(5)
