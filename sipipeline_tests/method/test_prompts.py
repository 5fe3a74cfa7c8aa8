import random

from sipipeline.method import prompts, rounds
from sipipeline.method.seeds import load_seed_tasks
from sipipeline.paths import DEFAULT_SEED_FILE

SEEDS = load_seed_tasks(DEFAULT_SEED_FILE)


def test_generation_prompt_numbers_examples_and_leaves_the_next_number_open():
    text = prompts.generation_prompt(["First   task:\n with space", "Second task"])
    assert text == (prompts.GENERATION_HEADER + "1. First task: with space\n"
                    "2. Second task\n3.")
    assert prompts.generation_prompt(["Ends with colon:"]).endswith("1. Ends with colon\n2.")


def test_few_shot_examples_follow_the_paper_counts_and_are_stable():
    examples = prompts.FewShotExamples.from_seeds(SEEDS)
    labels = [label for _, label in examples.classification]
    assert (labels.count(True), labels.count(False)) == (12, 19)
    assert len(examples.input_first) == 12
    assert len(examples.output_first) == 17
    assert any(task_input == "" for _, task_input, _ in examples.input_first)
    # Same seeds in another row order: the same prompt text (keeps the journal keys stable).
    shuffled = SEEDS.sample(frac=1.0, random_state=3)
    assert prompts.FewShotExamples.from_seeds(shuffled) == examples


def test_classification_and_instance_prompts_end_with_the_new_task():
    examples = prompts.FewShotExamples.from_seeds(SEEDS)
    text = prompts.classification_prompt(examples, "Tell whether a number is odd.")
    assert text.endswith("Task: Tell whether a number is odd.\nIs it a classification task?")
    assert text.count("Is it a classification task? Yes") == 12
    first = prompts.input_first_prompt(examples, "Name a colour.")
    assert first.startswith(prompts.INPUT_FIRST_HEADER) and first.endswith("Task: Name a colour.\n")
    assert "Example 1\nInput: " in first
    labelled = prompts.output_first_prompt(examples, "Classify a review.")
    assert labelled.count("Class label: ") == 17


def test_in_context_sampling_takes_two_machine_tasks_when_there_are_some():
    rng = random.Random(0)
    picked = rounds.InContextPools.of(SEEDS).sample(rng, 8, 2)
    seed_ids = set(SEEDS["task_id"])
    assert len(picked) == 8 and all(task_id in seed_ids for task_id, _ in picked)
    machine = SEEDS.head(3).assign(origin="machine", task_id=["m1", "m2", "m3"])
    pool = __import__("pandas").concat([SEEDS.iloc[3:], machine], ignore_index=True)
    groups = rounds.InContextPools.of(pool)
    text_of = dict(zip(pool["task_id"], pool["instruction"], strict=True))
    for seed in range(20):
        picked = groups.sample(random.Random(seed), 8, 2)
        assert sum(task_id in {"m1", "m2", "m3"} for task_id, _ in picked) == 2
        assert len({task_id for task_id, _ in picked}) == 8
        assert all(text_of[task_id] == text for task_id, text in picked)


def test_planned_prompts_are_reproducible_and_differ_by_round():
    first = rounds.plan_generation_prompts(SEEDS, 1, 3, 8, 2, random_seed=0)
    again = rounds.plan_generation_prompts(SEEDS, 1, 3, 8, 2, random_seed=0)
    other = rounds.plan_generation_prompts(SEEDS, 2, 3, 8, 2, random_seed=0)
    assert first == again
    assert [p.prompt for p in first] != [p.prompt for p in other]
    assert all(len(p.in_context_ids) == 8 and p.prompt.endswith("9.") for p in first)


def test_the_list_ends_seven_items_after_the_in_context_tasks():
    assert prompts.list_end(8) == prompts.LIST_END == 16
    assert prompts.list_end(15) == 23 and prompts.list_end(3) == 11
    assert "\n23. " in prompts.generation_stop_sequences(prompts.list_end(15))
