"""Shared fixtures: statistics of two synthetic rounds, and one full export."""

from __future__ import annotations

import pytest

from sipipeline.reporting.exports import export_dataset
from sipipeline.reporting.stats import compute_dataset_stats
from sipipeline_tests.support.export_cases import export_pool
from sipipeline_tests.support.stats_cases import (
    generated_candidates,
    round_tables,
    synthetic_pool,
    through_parquet,
)


@pytest.fixture(scope="module")
def two_rounds():
    pool = synthetic_pool()
    round_1 = compute_dataset_stats(
        pool[pool["round"] <= 1],
        generated_candidates(1, ["a", "b"], ["too_short", "too_short"], ["mi-1", "mi-2"]), 1,
        None, *round_tables(pool, 1))
    round_2 = compute_dataset_stats(
        pool, generated_candidates(2, ["c", "d", "e"],
                                   ["similar_to_pool", "blacklisted_word", None],
                                   ["mi-3", "mi-4", "mi-5"]), 2,
        through_parquet(round_1.table), *round_tables(pool, 2))
    return pool, round_1, round_2


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    pool = export_pool()
    out = tmp_path_factory.mktemp("export")
    written = export_dataset(pool, out, include_seeds=False, validation_fraction=0.2, seed=7,
                             card_info={"model": "gemma3-270m-q4", "api_key": "sk-SECRET-1",
                                        "parameters": {"temperature": 0.7,
                                                       "openai_api_key": "sk-SECRET-2"}})
    return pool, out, written
