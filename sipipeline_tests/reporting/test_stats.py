"""Dataset statistics: known facts of the 175 seeds, round vs cumulative scopes."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from sipipeline.method.seeds import load_seed_tasks
from sipipeline.paths import DEFAULT_SEED_FILE
from sipipeline.reporting import verbs
from sipipeline.reporting.markdown_render import render_markdown
from sipipeline.reporting.stats import (
    CUMULATIVE,
    ROUND,
    SEEDS,
    compute_dataset_stats,
    compute_seed_stats,
)
from sipipeline_tests.support.stats_cases import generated_candidates, synthetic_pool


@pytest.fixture(scope="module")
def raw_seed_records() -> list[dict]:
    with open(DEFAULT_SEED_FILE, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture(scope="module")
def seed_stats():
    return compute_seed_stats(load_seed_tasks(DEFAULT_SEED_FILE))


def test_seed_counts_match_known_facts(seed_stats):
    assert seed_stats.value(SEEDS, "tasks") == 175
    assert seed_stats.value(SEEDS, "classification_tasks") == 26
    assert seed_stats.value(SEEDS, "instances") == 175
    assert seed_stats.value(SEEDS, "empty_input_instances") == 50
    assert seed_stats.value(SEEDS, "instances_per_instruction") == 1.0
    assert seed_stats.value(SEEDS, "classification_share") == pytest.approx(26 / 175)
    assert seed_stats.metadata["seeds/classification_tasks"] == 26
    assert isinstance(seed_stats.metadata["seeds/empty_input_instances"], int)


def test_seed_word_lengths_match_an_independent_count(seed_stats, raw_seed_records):
    instructions = [len(r["instruction"].split()) for r in raw_seed_records]
    inputs = [len(i["input"].split()) for r in raw_seed_records for i in r["instances"]
              if i["input"].strip()]
    outputs = [len(i["output"].split()) for r in raw_seed_records for i in r["instances"]]
    assert len(inputs) == 125
    assert seed_stats.value(SEEDS, "instruction_words_mean") == pytest.approx(
        sum(instructions) / 175, rel=1e-12)
    assert seed_stats.value(SEEDS, "input_words_mean") == pytest.approx(
        sum(inputs) / len(inputs), rel=1e-12)
    assert seed_stats.value(SEEDS, "output_words_mean") == pytest.approx(
        sum(outputs) / len(outputs), rel=1e-12)
    assert seed_stats.value(SEEDS, "output_words_median") == statistics.median(outputs)
    assert "| classification tasks | 26 |" in render_markdown(seed_stats)


def test_round_scope_counts_only_this_round(two_rounds):
    _, _, stats = two_rounds
    assert stats.value(ROUND, "tasks") == 3
    assert stats.value(ROUND, "classification_tasks") == 1
    assert stats.value(ROUND, "instances") == 5
    assert stats.value(ROUND, "instances_per_instruction") == pytest.approx(5 / 3)
    assert stats.value(ROUND, "empty_input_instances") == 2
    assert stats.value(ROUND, "empty_input_share") == pytest.approx(2 / 5)
    # instructions: 7, 4, 6 words; non-empty inputs: 3, 3, 4; outputs: 1, 1, 1, 3, 3
    assert stats.value(ROUND, "instruction_words_mean") == pytest.approx(17 / 3)
    assert stats.value(ROUND, "input_words_mean") == pytest.approx(10 / 3)
    assert stats.value(ROUND, "output_words_mean") == pytest.approx(9 / 5)
    assert stats.value(ROUND, "output_words_median") == 1
    assert stats.value(ROUND, "instructions_generated") == 6
    assert stats.value(ROUND, "instructions_accepted") == 3
    assert stats.value(ROUND, "rejected/similar_to_pool") == 1
    assert stats.value(ROUND, "rejected/unknown") == 1
    assert stats.value(ROUND, "rejected/too_short") == 0


def test_cumulative_scope_adds_previous_rounds(two_rounds):
    _, round_1, stats = two_rounds
    assert round_1.value(CUMULATIVE, "tasks") == 2
    assert round_1.value(CUMULATIVE, "funnel_rounds") == 1
    assert stats.value(CUMULATIVE, "tasks") == 5
    assert stats.value(CUMULATIVE, "instances") == 8
    assert stats.value(CUMULATIVE, "classification_share") == pytest.approx(1 / 5)
    assert stats.value(CUMULATIVE, "empty_input_share") == pytest.approx(3 / 8)
    assert stats.value(CUMULATIVE, "instructions_generated") == 10
    assert stats.value(CUMULATIVE, "instructions_accepted") == 5
    assert stats.value(CUMULATIVE, "acceptance_rate") == pytest.approx(0.5)
    assert stats.value(CUMULATIVE, "rejected/too_short") == 2
    assert stats.value(CUMULATIVE, "funnel_rounds") == 2
    assert stats.value(SEEDS, "tasks") == 4


def test_metadata_is_flat_numbers_with_int_counts(two_rounds):
    _, _, stats = two_rounds
    meta = stats.metadata
    assert meta["round/tasks"] == 3 and isinstance(meta["round/tasks"], int)
    assert meta["cumulative/instructions_generated"] == 10
    assert isinstance(meta["cumulative/acceptance_rate"], float)
    assert meta["round_number"] == 2
    assert isinstance(meta["verb_noun_status"], str)
    assert all(isinstance(v, (int, float, str)) for v in meta.values())
    assert not any(isinstance(v, float) and math.isnan(v) for v in meta.values())
    assert "| instructions (tasks kept) | 3 | 5 | 4 |" in render_markdown(stats)
    assert "| candidates parsed from the responses | 6 |  | 10 |  |" in render_markdown(stats)


def test_nearest_seed_rouge_is_the_exact_seed_that_matches(two_rounds):
    _, _, stats = two_rounds
    scores = dict(zip(stats.rouge_l_to_seed["task_id"], stats.rouge_l_to_seed["score"],
                      strict=True))
    assert set(scores) == {"mi-1", "mi-2", "mi-3", "mi-4", "mi-5"}
    assert scores["mi-1"] == 1.0  # an exact copy of a seed
    assert stats.value(CUMULATIVE, "rouge_l_to_seed_hist/0.95-1.00") >= 1
    bins = stats.table[(stats.table["scope"] == ROUND)
                       & stats.table["metric"].str.startswith("rouge_l_to_seed_hist/")]
    assert len(bins) == 20 and bins["value"].sum() == 3


def test_statistics_work_without_spacy(monkeypatch):
    monkeypatch.setenv(verbs.DISABLE_ENV, "0")
    verbs.load_parser.cache_clear()
    try:
        stats = compute_dataset_stats(synthetic_pool(), generated_candidates(2, ["c"], []), 2)
    finally:
        verbs.load_parser.cache_clear()
    assert stats.verb_noun_status.startswith("not available:")
    assert stats.top_verbs.empty
    assert stats.value(ROUND, "tasks") == 3
    assert math.isnan(stats.value(ROUND, "distinct_verbs"))
    assert "not available" in render_markdown(stats)


def test_missing_previous_table_is_reported_in_the_funnel():
    stats = compute_dataset_stats(synthetic_pool(), generated_candidates(2, ["c"], []), 2, None)
    assert stats.value(CUMULATIVE, "funnel_rounds") == 1
    assert "covers 1 of 2 rounds" in render_markdown(stats)


def test_empty_round_gives_zeros_not_errors():
    pool = synthetic_pool()
    stats = compute_dataset_stats(pool[pool["round"] <= 1], generated_candidates(2, [], []), 2)
    assert stats.value(ROUND, "tasks") == 0
    assert math.isnan(stats.value(ROUND, "classification_share"))
    assert "round/classification_share" not in stats.metadata
    assert stats.value(CUMULATIVE, "tasks") == 2
