"""Stored per-task facts and bounded checks give what full recomputation gives, on real rounds."""

from __future__ import annotations

import pandas as pd
import pandas.testing as pdt

from sipipeline.defs import novelty_index
from sipipeline.defs.storage import VERSION_ATTR
from sipipeline.method.check_rules import check_rouge_l_novelty
from sipipeline.reporting import facts
from sipipeline.reporting.facts import FACT_COLUMNS, LENGTH_COLUMNS, with_task_facts
from sipipeline.reporting.stats import compute_dataset_stats, explode_instances, word_count
from sipipeline.similarity import encode_pool

ROUNDS = (1, 2, 3)


def without_facts(pool: pd.DataFrame) -> pd.DataFrame:
    return pool.drop(columns=[c for c in (*FACT_COLUMNS, *LENGTH_COLUMNS) if c in pool.columns])


def test_three_rounds_of_stored_facts_match_full_recomputation(harness_for):
    harness = harness_for()
    for number in ROUNDS:
        assert harness.run_round(number, num_prompts=4).success
    previous = None
    for number in ROUNDS:
        pool = harness.read("filtered_tasks", number)
        assert pool["instruction_words"].notna().all()  # stored when the tasks entered
        assert facts.lengths_stored(pool)
        # The stored instance word counts are the counts of the instances' text.
        exploded = explode_instances(pool)
        assert facts.flat_word_counts(pool, facts.INPUT_WORDS).tolist() == [
            word_count(text.strip()) for text in exploded["input"]]
        assert facts.flat_word_counts(pool, facts.OUTPUT_WORDS).tolist() == [
            word_count(text) for text in exploded["output"]]
        tables = [harness.read(name, number) for name in
                  ("generated_instructions", "classification_labels", "instances")]
        stored = compute_dataset_stats(pool, tables[0], number, previous, *tables[1:])
        full = compute_dataset_stats(without_facts(pool), tables[0], number, previous,
                                     *tables[1:])
        pdt.assert_frame_equal(stored.table, full.table)
        pdt.assert_frame_equal(stored.top_verbs, full.top_verbs)
        pdt.assert_frame_equal(stored.rouge_l_to_seed, full.rouge_l_to_seed)
        assert stored.metadata == full.metadata
        # What the run itself stored is the same table.
        pdt.assert_frame_equal(harness.read("dataset_stats", number).reset_index(drop=True),
                               full.table.reset_index(drop=True), check_dtype=False)
        previous = full.table
        # Facts computed for the whole pool at once equal the ones stored round by round.
        recomputed = with_task_facts(without_facts(pool))
        for column in (*FACT_COLUMNS, *LENGTH_COLUMNS):
            pdt.assert_series_equal(recomputed[column].reset_index(drop=True),
                                    pool[column].reset_index(drop=True), check_dtype=False,
                                    check_names=False)
        # The bounded ROUGE-L check decides as the exhaustive one does.
        bounded = check_rouge_l_novelty(pool, number, 0.7, pair_budget=50)
        exhaustive = check_rouge_l_novelty(pool, number, 0.7, pair_budget=10**9)
        assert bounded.passed == exhaustive.passed is True
        assert exhaustive.details["exhaustive_tasks"] == exhaustive.details["sampled"]
        assert bounded.details["scored_pairs"] <= 50
        # The novelty filter's encoding kept from round to round is the pool's fresh encoding.
        kept = novelty_index.pool_encoding(harness.store, pool)
        assert (harness.store.local_dir(novelty_index.INDEX_DIR)
                / f"{pool.attrs[VERSION_ATTR]}.npz").is_file()
        fresh = encode_pool(pool["instruction"].tolist())
        assert kept.codes.tolist() == fresh.codes.tolist() and kept.lengths == fresh.lengths
