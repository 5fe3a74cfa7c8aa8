"""Asset checks: each rule on hand-made frames, then the checks inside real round runs."""

from __future__ import annotations

import math

import dagster as dg
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer

from sipipeline.method import prompts
from sipipeline.method.check_rules import (
    DEFAULT_MAX_PARSE_FAILURE_SHARE,
    check_accepted_tasks_have_instances,
    check_input_differs_from_output,
    check_no_duplicate_instructions,
    check_no_empty_outputs,
    check_parse_failure_share,
    check_pool_schema,
    check_rouge_l_novelty,
)
from sipipeline.method.schema import INSTANCES_SCHEMA, frame, pool_frame
from sipipeline.method.vocabulary import duplicate_key
from sipipeline_tests.support.fake_model import respond

SEEDS = ["Write a poem about the sea.", "Explain gravity to a child.",
         "Give three tips for staying healthy."]


def pool_of(machine: list[tuple[str, int]], seeds: list[str] = SEEDS,
            instances: list | None = None) -> pd.DataFrame:
    """A pool: seed rows, then machine rows `(instruction, round)` with one valid instance."""
    rows = [{"task_id": f"seed_{i}", "instruction": text, "origin": "seed", "round": 0,
             "is_classification": False, "instances": [{"input": "", "output": "ok"}]}
            for i, text in enumerate(seeds)]
    for i, (text, number) in enumerate(machine):
        rows.append({"task_id": f"m_{i}", "instruction": text, "origin": "machine",
                     "round": number, "is_classification": False,
                     "instances": (instances[i] if instances is not None
                                   else [{"input": "x", "output": "y"}]),
                     "max_rouge_l": 0.99, "mean_rouge_l": 0.1})
    return pool_frame(rows)


def reference_score(candidate: str, pool_item: str) -> float:
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return scorer.score(candidate, pool_item)["rougeL"].fmeasure


# ------------------------------------------------------------------ duplicates
def test_normalization_folds_case_punctuation_space_and_ligatures():
    assert duplicate_key("  Give me a JOKE!! ") == "give me a joke"
    assert duplicate_key("Describe the ﬁnest ﬁsh") == "describe the finest fish"
    assert duplicate_key("Round 3.14 up") != duplicate_key("Round 314 up")


def test_duplicate_instructions_are_found_after_normalization():
    pool = pool_of([("Tell me a joke about cats.", 1), ("tell me a  JOKE about cats", 2),
                    ("Describe a sunset over the mountains.", 2)])
    passed, details = check_no_duplicate_instructions(pool)
    assert not passed
    assert details["duplicate_groups"] == 1 and details["duplicate_tasks"] == 2
    assert details["examples"][0]["task_ids"] == ["m_0", "m_1"]
    assert check_no_duplicate_instructions(pool.drop(index=4)).passed


def test_a_copy_that_rouge_cannot_see_is_still_a_duplicate():
    # Ligatures vanish from ROUGE-L tokens, so these two score well below the threshold.
    plain = "Describe the finest fish fillets first in a short paragraph"
    ligature = "Describe the ﬁnest ﬁsh ﬁllets ﬁrst in a short paragraph"
    assert reference_score(ligature, plain) < 0.7
    assert not check_no_duplicate_instructions(pool_of([(plain, 1), (ligature, 1)])).passed


def test_duplicates_are_found_by_stored_hash_or_computed_when_missing_never_by_hash_alone():
    pool = pool_of([("Tell me a joke about cats.", 1), ("tell me a  JOKE about cats", 2),
                    ("Describe a sunset over the mountains.", 2)])
    stored = check_no_duplicate_instructions(pool).details
    older = pool.drop(columns=["duplicate_hash"])  # a pool written before the column existed
    assert check_no_duplicate_instructions(older).details == stored
    partly = pool.copy()
    partly["duplicate_hash"] = partly["duplicate_hash"].astype("Int64")
    partly.loc[len(SEEDS), "duplicate_hash"] = pd.NA
    assert check_no_duplicate_instructions(partly).details == stored
    # Equal hashes of different texts (a collision) are not a duplicate: texts decide.
    collided = pool.drop(index=len(SEEDS) + 1).reset_index(drop=True)
    collided["duplicate_hash"] = 7
    assert check_no_duplicate_instructions(collided).passed


# ------------------------------------------------------------------ ROUGE-L
def test_rouge_check_passes_a_novel_round_with_rouge_scores():
    new = ["Summarize the plot of a mystery novel in two lines.",
           "List five uses of a paperclip in an office."]
    pool = pool_of([(text, 1) for text in new])
    passed, details = check_rouge_l_novelty(pool, round_number=1, threshold=0.7)
    assert passed
    assert details["sampled"] == 2 and details["above_threshold"] == 0
    expected = max(reference_score(new[1], earlier) for earlier in SEEDS + new[:1])
    expected = max(expected, max(reference_score(new[0], s) for s in SEEDS))
    assert details["highest_recomputed"] == expected


def test_rouge_check_fails_a_near_copy_of_an_earlier_pool_task():
    pool = pool_of([("Write a short poem about the sea.", 2)])
    assert reference_score("Write a short poem about the sea.", SEEDS[0]) > 0.7
    passed, details = check_rouge_l_novelty(pool, round_number=2, threshold=0.7)
    assert not passed and details["above_threshold"] == 1
    assert details["examples"][0]["nearest"] == SEEDS[0]
    # Only the round being checked is sampled: the same pool is fine for round 3.
    assert check_rouge_l_novelty(pool, round_number=3, threshold=0.7).details["sampled"] == 0


def test_rouge_check_compares_only_with_rows_above_and_honours_the_threshold():
    # Round 1's task has a near copy below it (from round 2): not its concern.
    first = "Explain gravity to a child using apples."
    seeds = ["Bake bread for a child.", "Name a color."]
    pool = pool_of([(first, 1), ("Explain gravity to a child using two apples.", 2)], seeds)
    assert reference_score(first, pool["instruction"].iloc[-1]) > 0.7
    passed, details = check_rouge_l_novelty(pool, 1, threshold=0.7)
    assert passed and details["sampled"] == 1
    highest = max(reference_score(first, seed) for seed in seeds)
    assert details["highest_recomputed"] == highest > 0
    assert check_rouge_l_novelty(pool, 1, threshold=highest).passed  # equal is kept
    assert not check_rouge_l_novelty(pool, 1, threshold=highest - 1e-9).passed


def test_rouge_check_flags_a_stored_score_lower_than_the_recomputed_one():
    pool = pool_of([("Write a poem about the deep blue sea at night.", 1)])
    pool.loc[pool["origin"] == "machine", "max_rouge_l"] = 0.01
    passed, details = check_rouge_l_novelty(pool, 1, threshold=0.7)
    assert not passed and details["stored_score_too_low"] == 1


def test_rouge_check_samples_a_bounded_number_of_tasks():
    pool = pool_of([(f"Describe item number {i} of a catalogue about {i} cars.", 1)
                    for i in range(12)])
    details = check_rouge_l_novelty(pool, 1, threshold=0.95, sample_size=5).details
    assert details["sampled"] == 5 and details["accepted_this_round"] == 12


def test_rouge_check_rescores_every_new_task_against_its_recorded_neighbours():
    texts = ["Summarize the plot of a mystery novel in two lines.",
             "List five uses of a paperclip in an office."]
    pool = pool_of([(text, 1) for text in texts])
    honest = [[{"task_id": "seed_0", "instruction": SEEDS[0],
                "score": reference_score(text, SEEDS[0])}] for text in texts]
    pool["most_similar"] = [[]] * len(SEEDS) + honest
    passed, details = check_rouge_l_novelty(pool, 1, threshold=0.7, sample_size=0)
    assert passed and details["neighbour_pairs"] == 2 and details["sampled"] == 0
    # A recorded score the reference does not reproduce is a filter bug.
    pool["most_similar"] = [[]] * len(SEEDS) + [
        [{**honest[0][0], "score": honest[0][0]["score"] + 0.01}], honest[1]]
    passed, details = check_rouge_l_novelty(pool, 1, threshold=0.7, sample_size=0)
    assert not passed and details["neighbour_score_mismatch"] == 1
    # A recorded neighbour above the threshold fails the check even when no task is sampled.
    copy = "Write a short poem about the sea."
    pool = pool_of([(copy, 1)])
    pool["most_similar"] = [[]] * len(SEEDS) + [[{
        "task_id": "seed_0", "instruction": SEEDS[0], "score": reference_score(copy, SEEDS[0])}]]
    passed, details = check_rouge_l_novelty(pool, 1, threshold=0.7, sample_size=0)
    assert not passed and details["above_threshold"] == 1


def test_rouge_check_reads_neighbour_texts_by_id_from_the_pool_and_the_round_candidates():
    text = "Summarize the plot of a mystery novel in two lines."
    dropped_later = "Summarize the plot of a horror novel in two short lines."
    pool = pool_of([(text, 1)])
    pool["most_similar"] = [[]] * len(SEEDS) + [[
        {"task_id": "seed_0", "score": reference_score(text, SEEDS[0])},
        {"task_id": "mt-gone", "score": reference_score(text, dropped_later)}]]
    passed, details = check_rouge_l_novelty(pool, 1, threshold=0.99, sample_size=1,
                                            other_texts={"mt-gone": dropped_later})
    assert passed and details["neighbour_pairs"] == 2
    # A neighbour found neither in the pool nor among the candidates cannot be rechecked.
    passed, details = check_rouge_l_novelty(pool, 1, threshold=0.99, sample_size=1)
    assert not passed and details["neighbour_score_mismatch"] == 1
    assert details["examples"][0]["unknown_neighbour"] == "mt-gone"


def test_schema_and_instance_checks_look_at_the_rounds_own_rows():
    pool = pool_of([("Old task from round one.", 1), ("New task from round two.", 2)],
                   instances=[[], [{"input": "x", "output": "y"}]])
    assert not check_accepted_tasks_have_instances(pool).passed
    assert check_accepted_tasks_have_instances(pool, round_number=2).passed
    pool["in_context_ids"] = pool["in_context_ids"].astype(object)
    pool.at[len(SEEDS), "in_context_ids"] = 5  # an old row: Parquet gives it back typed
    assert not check_pool_schema(pool).passed
    assert check_pool_schema(pool, round_number=2).passed
    pool.loc[len(SEEDS) + 1, "task_id"] = pool.loc[len(SEEDS), "task_id"]
    assert not check_pool_schema(pool, round_number=2).passed  # ids: the whole pool


def test_rouge_check_cost_is_bounded_by_the_pair_budget_whatever_the_pool_size():
    seeds = [f"Name {i} rivers that flow through country number {i * 7}." for i in range(400)]
    new = [f"Compose a limerick about a cat called {name}." for name in ("Tom", "Ada", "Bo")]
    pool = pool_of([(text, 1) for text in new], seeds)
    full = check_rouge_l_novelty(pool, 1, threshold=0.7, pair_budget=10_000).details
    assert full["exhaustive_tasks"] == 3 and full["scored_pairs"] <= 3 * 402
    bounded = check_rouge_l_novelty(pool, 1, threshold=0.7, pair_budget=90).details
    assert bounded["exhaustive_tasks"] == 0 and bounded["scored_pairs"] <= 90
    assert bounded["highest_recomputed"] <= full["highest_recomputed"]


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.lists(st.sampled_from(["the", "a", "cat", "dog", "sat", "on", "mat",
                                                "ran", "the", "red", "big"]),
                               min_size=0, max_size=9).map(" ".join),
                      min_size=2, max_size=14))
def test_rouge_check_maximum_equals_rescoring_every_earlier_pair(texts):
    """Pairs skipped by the shared-token bound never change the recomputed maximum."""
    pool = pool_of([(text, 1) for text in texts], seeds=["The cat sat on the mat."])
    details = check_rouge_l_novelty(pool, 1, threshold=1.0, sample_size=len(texts)).details
    everything = pool["instruction"].tolist()
    expected = max(reference_score(everything[i], earlier)
                   for i in range(1, len(everything)) for earlier in everything[:i])
    assert details["highest_recomputed"] == expected
    assert details["scored_pairs"] + details["bounded_pairs"] == sum(range(1, len(everything)))


# ------------------------------------------------------------------ schema
def test_schema_check_accepts_a_pool_frame():
    passed, details = check_pool_schema(pool_of([("Describe a tree.", 1)]))
    assert passed, details


@pytest.mark.parametrize("damage, field", [
    (lambda p: p.drop(columns=["instances"]), "missing_columns"),
    (lambda p: p.assign(round=["three"] * len(p)), "mistyped_columns"),
    (lambda p: p.assign(is_classification=["maybe"] * len(p)), "mistyped_columns"),
    (lambda p: p.assign(task_id=[None] + list(p["task_id"][1:])), "null_key_values"),
    (lambda p: p.assign(task_id=["same"] * len(p)), "duplicate_task_ids"),
])
def test_schema_check_reports_each_kind_of_damage(damage, field):
    passed, details = check_pool_schema(damage(pool_of([("Describe a tree.", 1)])))
    assert not passed and details[field]


# ------------------------------------------------------------------ instances in the pool
def test_every_machine_task_needs_a_valid_instance():
    pool = pool_of([("Describe a tree.", 1), ("Name a river.", 1), ("Count to ten.", 1)],
                   instances=[[{"input": "", "output": "A tall plant."}],
                              [{"input": "same", "output": "same"}], []])
    passed, details = check_accepted_tasks_have_instances(pool)
    assert not passed
    assert [e["task_id"] for e in details["examples"]] == ["m_1", "m_2"]
    assert check_accepted_tasks_have_instances(pool.iloc[:4]).passed


# ------------------------------------------------------------------ instances asset
def instances_of(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return frame([{"instance_id": f"in_{i}", "task_id": f"t_{i}", "round": 1,
                   "instruction": "Do it.", "is_classification": False, "input": task_input,
                   "output": task_output, "status": status,
                   "drop_reason": None if status == "kept" else "empty_output"}
                  for i, (task_input, task_output, status) in enumerate(rows)],
                 INSTANCES_SCHEMA)


def test_empty_outputs_fail_only_when_kept():
    dropped = instances_of([("a", "b", "kept"), ("c", "", "dropped")])
    assert check_no_empty_outputs(dropped).passed
    kept = instances_of([("a", "b", "kept"), ("c", "  ", "kept")])
    passed, details = check_no_empty_outputs(kept)
    assert not passed and details["empty_outputs"] == 1
    assert details["examples"][0]["instance_id"] == "in_1"


def test_input_equal_to_output_fails_when_kept():
    assert check_input_differs_from_output(
        instances_of([("same", "same", "dropped"), ("", "out", "kept")])).passed
    passed, details = check_input_differs_from_output(
        instances_of([("same ", "same", "kept"), ("x", "y", "kept")]))
    assert not passed and details["input_equals_output"] == 1


# ------------------------------------------------------------------ generated_instructions
def test_parse_failure_share_against_its_level():
    generated = pd.DataFrame({"reject_reason": ["truncated", None, "unparseable", None,
                                                "too_short", None, None, None]})
    passed, details = check_parse_failure_share(generated, max_share=0.3)
    assert passed and details["share"] == 0.25 and details["by_reason"] == {
        "unparseable": 1, "truncated": 1, "unfinished_thinking": 0}
    assert not check_parse_failure_share(generated, max_share=0.2).passed
    assert check_parse_failure_share(generated.iloc[:0], max_share=0.0).passed




# ------------------------------------------------------------------ checks in real round runs
def _generation_prompt_number(prompt: str) -> int:
    return len([line for line in prompt.splitlines() if line[:1].isdigit()])


def respond_with_ligature_copies(prompt: str, body: dict, index: int) -> tuple[str, str]:
    """Like the fake model, but generation answers hold a copy ROUGE-L cannot see."""
    if prompt.startswith(prompts.GENERATION_HEADER):
        start = _generation_prompt_number(prompt)
        return (" Describe the ﬁnest ﬁsh ﬁllets ﬁrst in a short paragraph\n"
                f"{start + 1}. Describe the finest fish fillets first in a short paragraph"
                ), "stop"
    return respond(prompt, body, index)


def respond_always_cut(prompt: str, body: dict, index: int) -> tuple[str, str]:
    """Like the fake model, but every generation answer hits the token limit."""
    text, finish = respond(prompt, body, index)
    if prompt.startswith(prompts.GENERATION_HEADER) and finish != "length":
        text, finish = text + f"\n{_generation_prompt_number(prompt) + 30}. Explain why", "length"
    return text, finish


def evaluations(result) -> dict[str, object]:
    return {f"{e.asset_key.to_user_string()}:{e.check_name}": e
            for e in result.get_asset_check_evaluations()}


def test_a_clean_round_passes_every_check_and_a_high_parse_failure_share_only_warns(
        harness_for):
    harness = harness_for(respond_always_cut)
    result = harness.run_round(1, extra_config={
        "generated_instructions_checks": {"config": {"max_parse_failure_share": 0.05}}})
    assert result.success  # the warning does not stop the round
    found = evaluations(result)
    assert set(found) == {
        "filtered_tasks:no_duplicate_instructions", "filtered_tasks:rouge_l_below_threshold",
        "filtered_tasks:pool_schema", "filtered_tasks:accepted_tasks_have_instances",
        "instances:no_empty_outputs", "instances:input_differs_from_output",
        "generated_instructions:parse_failure_share"}
    assert all(e.partition == "round_001" for e in found.values())
    warning = found.pop("generated_instructions:parse_failure_share")
    assert not warning.passed and warning.severity.value == "WARN"
    share = warning.metadata["share"].value
    assert 0.05 < share <= DEFAULT_MAX_PARSE_FAILURE_SHARE  # the default level would pass
    assert all(e.passed for e in found.values())
    rouge = found["filtered_tasks:rouge_l_below_threshold"].metadata
    assert rouge["sampled"].value > 0 and rouge["scored_pairs"].value > 0
    assert (harness.storage / "dataset_stats" / "round_001.parquet").is_file()


def test_a_failed_blocking_check_stops_the_round_before_its_statistics(harness_for):
    harness = harness_for(respond_with_ligature_copies)
    result = harness.run_round(1)
    assert not result.success
    found = evaluations(result)
    duplicate = found["filtered_tasks:no_duplicate_instructions"]
    assert not duplicate.passed and duplicate.partition == "round_001"
    assert duplicate.metadata["duplicate_groups"].value == 1
    assert found["filtered_tasks:rouge_l_below_threshold"].passed  # ROUGE-L saw no copy
    assert (harness.storage / "filtered_tasks" / "round_001.parquet").is_file()
    assert not (harness.storage / "dataset_stats" / "round_001.parquet").exists()
    assert not math.isnan(harness.read("filtered_tasks", 1)["round"].max())


def test_the_rouge_check_uses_the_threshold_the_round_recorded(harness_for):
    harness = harness_for(respond)
    result = harness.run_round(1, extra_config={
        "generated_instructions": {"config": {"num_prompts": 3, "similarity_threshold": 0.55}}})
    assert result.success
    generated = next(e for e in result.get_asset_materialization_events()
                     if e.asset_key == dg.AssetKey("generated_instructions"))
    recorded = generated.step_materialization_data.materialization.metadata
    assert recorded["similarity_threshold"].value == 0.55
    rouge = evaluations(result)["filtered_tasks:rouge_l_below_threshold"].metadata
    assert rouge["threshold"].value == 0.55
