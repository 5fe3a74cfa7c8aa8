import pandas as pd

from sipipeline.method import prompts, rounds
from sipipeline.method.seeds import load_seed_tasks
from sipipeline.paths import DEFAULT_SEED_FILE
from sipipeline.similarity import rouge_l_fmeasure
from sipipeline_tests.support.fake_model import respond

SEEDS = load_seed_tasks(DEFAULT_SEED_FILE)


def _round(pool: pd.DataFrame, number: int, num_prompts: int = 4):
    planned = rounds.plan_generation_prompts(pool, number, num_prompts, 8, 2, random_seed=0)
    replies = [rounds.ModelText(*respond(p.prompt, {}, 0)) for p in planned]
    generated = rounds.generated_candidates(planned, replies, pool, number, "fake", 0.7)
    accepted = rounds.accepted_candidates(generated)
    examples = prompts.FewShotExamples.from_seeds(SEEDS)
    texts = [prompts.classification_prompt(examples, i) for i in accepted["instruction"]]
    labels = rounds.classification_frame(
        accepted, texts, [rounds.ModelText(*respond(t, {}, 0)) for t in texts], "fake")
    texts = [rounds.instance_prompt(examples, r.instruction, r.is_classification)
             for r in labels.itertuples()]
    instances = rounds.instances_frame(
        labels, texts, [rounds.ModelText(*respond(t, {}, 0)) for t in texts], "fake")
    return generated, labels, instances, rounds.next_pool(pool, generated, labels, instances)


def test_a_round_keeps_novel_valid_tasks_and_records_why_others_went():
    generated, labels, instances, pool = _round(SEEDS, 1)
    reasons = set(generated["reject_reason"].dropna())
    assert {"blacklisted_word", "too_short", "similar_to_pool"} <= reasons
    accepted = generated[generated["status"] == "accepted"]
    assert len(accepted) > 0
    assert accepted["task_id"].str.startswith("mi-").all()
    assert (accepted["max_rouge_l"] <= 0.7).all()
    assert accepted["most_similar"].map(len).eq(10).all()
    copies = generated[generated["reject_reason"] == "similar_to_pool"]
    assert (copies["max_rouge_l"] > 0.7).all()
    # Lineage: every accepted instruction points at its prompt and in-context seed tasks.
    for row in accepted.itertuples():
        assert len(row.in_context_ids) == 8 and set(row.in_context_ids) <= set(SEEDS["task_id"])
        assert row.prompt.startswith(prompts.GENERATION_HEADER)
    assert set(labels["task_id"]) == set(accepted["task_id"])
    assert (instances["drop_reason"] == "input_equals_output").any()
    kept = instances[instances["status"] == "kept"]
    assert (kept["input"] != kept["output"]).all() and (kept["output"] != "").all()
    assert len(pool) == len(SEEDS) + kept["task_id"].nunique()
    new = pool[pool["origin"] == "machine"]
    assert new["instances"].map(len).between(1, 5).all()
    assert new["is_classification"].any() and not new["is_classification"].all()


def test_later_rounds_sample_machine_tasks_and_never_keep_a_near_duplicate():
    pool = SEEDS
    for number in (1, 2, 3):
        generated, _, _, pool = _round(pool, number)
        if number > 1:
            machine_ids = set(pool.loc[pool["origin"] == "machine", "task_id"])
            assert any(set(ids) & machine_ids for ids in generated["in_context_ids"])
    texts = list(pool["instruction"])
    assert pool["task_id"].is_unique
    machine = pool[pool["origin"] == "machine"]
    for row in machine.itertuples():
        earlier = texts[: texts.index(row.instruction)]
        assert max(rouge_l_fmeasure(row.instruction, other) for other in earlier) <= 0.7


def test_the_funnel_counts_every_stage():
    generated, *_ = _round(SEEDS, 1)
    funnel = rounds.rejection_funnel(generated, 4)
    rejected = sum(v for k, v in funnel.items() if k.startswith("rejected_"))
    assert funnel["parsed_candidates"] == rejected + funnel["accepted"] == len(generated)


def test_a_round_numbers_the_list_from_the_prompts_next_number():
    planned = rounds.plan_generation_prompts(SEEDS, 1, 1, 8, 2, random_seed=0)
    reply = rounds.ModelText(
        " Give a simple bread recipe with numbered steps:\n1. Mix flour and water well\n"
        "2. Bake the loaf in a hot oven\n10. Name five rivers in South America.", "stop")
    generated = rounds.generated_candidates(planned, [reply], SEEDS, 1, "fake", 0.7)
    assert list(generated["position"]) == [0, 1]
    assert generated["instruction"].iloc[1] == "Name five rivers in South America."


def test_an_instance_response_without_markers_is_recorded_and_keeps_nothing():
    labels = pd.DataFrame({"task_id": ["mi-1", "mi-2"], "round": [1, 1],
                           "instruction": ["Name a colour of the rainbow.",
                                           "Classify a review as positive or negative."],
                           "is_classification": [False, True]})
    replies = [rounds.ModelText("The answer is 42.", "stop"),
               rounds.ModelText("Positive and negative reviews.", "stop")]
    instances = rounds.instances_frame(labels, ["p1", "p2"], replies, "fake")
    assert list(instances["status"]) == ["dropped", "dropped"]
    assert list(instances["drop_reason"]) == ["missing_field_marker", "missing_field_marker"]


def test_a_prompt_with_more_examples_still_ends_its_list_seven_items_later():
    pool = load_seed_tasks(DEFAULT_SEED_FILE)
    planned = rounds.plan_generation_prompts(pool, 1, 1, 15, 0, random_seed=0)
    assert planned[0].prompt.endswith("16.")
    items = " A task about rivers and their deltas.\n" + "".join(
        f"{n}. Describe item number {n} in a short list today.\n" for n in range(17, 26))
    generated = rounds.generated_candidates(planned, [rounds.ModelText(items, "stop")], pool, 1,
                                            "fake-model", 0.7)
    assert len(generated) == 7  # items 16 to 22; item 23 ends the list
