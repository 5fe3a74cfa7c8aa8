"""Statistics of two rounds of the synthetic pool, shared by the stats and report tests."""

from __future__ import annotations

import pytest

from sipipeline.reporting.stats import compute_dataset_stats
from sipipeline_tests.support.stats_cases import (
    generated_candidates,
    synthetic_pool,
    through_parquet,
)


@pytest.fixture(scope="module")
def two_rounds():
    pool = synthetic_pool()
    round_1 = compute_dataset_stats(
        pool[pool["round"] <= 1],
        generated_candidates(1, ["a", "b"], ["too_short", "too_short"]), 1)
    round_2 = compute_dataset_stats(
        pool, generated_candidates(2, ["c", "d", "e"],
                                   ["similar_to_pool", "blacklisted_word", None]), 2,
        through_parquet(round_1.table))
    return pool, round_1, round_2
