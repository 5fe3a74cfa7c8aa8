"""Review sampling, the judge prompt, strict verdict parsing and the judge filter."""

from __future__ import annotations

import pandas as pd
import pytest

from sipipeline.method import review
from sipipeline.method.schema import pool_frame
from sipipeline.method.vocabulary import Origin, ReviewQuestion

VALID, INPUT, OUTPUT = (ReviewQuestion.VALID_INSTRUCTION, ReviewQuestion.APPROPRIATE_INPUT,
                        ReviewQuestion.CORRECT_OUTPUT)


def machine_pool(classification: int, other: int, round_number: int = 1,
                 instances_per_task: int = 3) -> pd.DataFrame:
    rows = [{"task_id": "seed_task_0", "instruction": "A seed task.", "origin": Origin.SEED,
             "round": 0, "is_classification": False,
             "instances": [{"input": "", "output": "x"}]}]
    for index in range(classification + other):
        rows.append({
            "task_id": f"mi-{round_number}-{index:04d}",
            "instruction": f"Task {index} of round {round_number}.",
            "origin": Origin.MACHINE, "round": round_number,
            "is_classification": index < classification,
            "instances": [{"input": f"in {index}.{k}", "output": f"out {index}.{k}"}
                          for k in range(instances_per_task)],
        })
    return pool_frame(rows)


def test_allocate_is_proportional_and_exact():
    assert review.allocate({"a": 30, "b": 70}, 10) == {"a": 3, "b": 7}
    assert review.allocate({"a": 1, "b": 2}, 2) == {"a": 1, "b": 1}
    assert review.allocate({"a": 5, "b": 5}, 50) == {"a": 5, "b": 5}
    assert sum(review.allocate({"a": 13, "b": 29, "c": 7}, 20).values()) == 20


def test_sample_is_stratified_seeded_and_one_instance_per_task():
    pool = pd.concat([machine_pool(60, 240), machine_pool(5, 5, round_number=2)],
                     ignore_index=True)
    sample = review.review_sample(pool, 1, size=50, seed=3)
    assert len(sample) == 50
    assert set(sample["round"]) == {1}
    assert sample["task_id"].is_unique
    assert int(sample["is_classification"].sum()) == 10  # 60/300 of 50
    again = review.review_sample(pool, 1, size=50, seed=3)
    pd.testing.assert_frame_equal(sample, again)
    other_seed = review.review_sample(pool, 1, size=50, seed=4)
    assert set(other_seed["record_id"]) != set(sample["record_id"])
    tasks = pool.set_index("task_id")
    for record in sample.itertuples():
        instances = tasks.loc[record.task_id, "instances"]
        assert {"input": record.input, "output": record.output} in instances
        assert record.record_id == review.instance_id(record.task_id, record.input,
                                                      record.output)


def test_sample_takes_everything_when_the_round_is_small_and_skips_seeds():
    sample = review.review_sample(machine_pool(2, 3), 1, size=200)
    assert len(sample) == 5
    assert "seed_task_0" not in set(sample["task_id"])
    with pytest.raises(ValueError):
        review.review_sample(machine_pool(2, 3), 1, size=0)


def test_judge_prompt_asks_the_three_questions_and_ends_with_the_record():
    text = review.judge_prompt("Name a prime.", "", "7")
    for question in review.QUESTIONS:
        assert f"{question}: {review.QUESTION_TEXT[question]}" in text
    assert text.endswith("Review 3\nInstruction: Name a prime.\n"
                         f"Input: {review.EMPTY_INPUT}\nOutput: 7\n")
    assert review.JUDGE_HEADER.strip() in text


def test_the_worked_reviews_parse_to_their_answers():
    text = review.judge_prompt("x", "y", "z")
    for worked in review.WORKED_REVIEWS:
        block = review.answer_lines(worked.answers, worked.reason)
        assert block in text
        verdict = review.parse_verdict(block)
        assert tuple(verdict.answers[q] for q in review.QUESTIONS) == worked.answers
        assert verdict.reason == worked.reason
    assert {False} <= {a for w in review.WORKED_REVIEWS for a in w.answers}


@pytest.mark.parametrize("text, expected", [
    ("valid_instruction: yes\nappropriate_input: no\ncorrect_output: yes\nreason: bad input",
     {VALID: True, INPUT: False, OUTPUT: True}),
    ("**Valid instruction**: Yes.\n**Appropriate input**: NO\n1. correct_output: no\n",
     {VALID: True, INPUT: False, OUTPUT: False}),
    ("  valid-instruction = yes\nappropriate_input: yes\ncorrect_output: yes",
     {VALID: True, INPUT: True, OUTPUT: True}),
])
def test_parse_verdict_reads_clear_answers(text, expected):
    verdict = review.parse_verdict(text)
    assert dict(verdict.answers) == expected
    assert verdict.parse_error is None


def test_parse_verdict_keeps_the_reason():
    verdict = review.parse_verdict(
        "valid_instruction: yes\nappropriate_input: yes\ncorrect_output: no\n"
        "reason: the sum is wrong")
    assert verdict.reason == "the sum is wrong"


@pytest.mark.parametrize("text, finish, unparsed, cause", [
    ("I'm sorry, but I can't help with evaluating this.", "stop", [VALID, INPUT, OUTPUT],
     "no verdict lines"),
    ("", "stop", [VALID, INPUT, OUTPUT], "no verdict lines"),
    ("valid_instruction: probably\nappropriate_input: yes\ncorrect_output: yes", "stop",
     [VALID], "'probably' is not yes or no"),
    ("valid_instruction: yes, mostly\nappropriate_input: yes\ncorrect_output: yes", "stop",
     [VALID], "is not yes or no"),
    ("valid_instruction: yes\nappropriate_input: yes\ncorrect_output: yes\n"
     "correct_output: no", "stop", [OUTPUT], "conflicting answers"),
    ("valid_instruction: yes\nappropriate_input: yes", "length", [OUTPUT],
     "correct_output: no answer (truncated)"),
    ("The output looks correct, yes.", "stop", [VALID, INPUT, OUTPUT], "no verdict lines"),
])
def test_parse_verdict_never_guesses(text, finish, unparsed, cause):
    verdict = review.parse_verdict(text, finish)
    for question in review.QUESTIONS:
        if question in unparsed:
            assert verdict.answers[question] is None
        else:
            assert verdict.answers[question] is True
    assert cause in verdict.parse_error


def test_judged_records_store_verdicts_raw_answers_and_errors():
    sample = review.review_sample(machine_pool(1, 1), 1)
    responses = [review.ModelText("valid_instruction: no\nappropriate_input: yes\n"
                                  "correct_output: yes\nreason: not a task", "stop"),
                 review.ModelText("no idea", "stop")]
    judged = review.judged_records(sample, responses, "judge-model")
    assert list(judged["valid_instruction"]) == [False, None]
    assert pd.isna(judged["parse_error"].iloc[0])
    assert "no verdict lines" in judged["parse_error"].iloc[1]
    assert list(judged["raw_answer"]) == [r.text for r in responses]
    assert set(judged["reviewer"]) == {"judge-model"}


def test_drop_judged_invalid_removes_only_clear_noes():
    pool = machine_pool(0, 4, instances_per_task=2)
    tasks = pool[pool["origin"] == Origin.MACHINE].reset_index(drop=True)

    def record(task_index: int, instance_index: int, **answers) -> dict:
        task = tasks.iloc[task_index]
        instance = task["instances"][instance_index]
        return {**review.review_record(task, instance, 1), "valid_instruction": True,
                "appropriate_input": True, "correct_output": True, **answers}

    verdicts = review.review_records([
        record(0, 0, valid_instruction=False),           # task 0 leaves
        record(1, 1, correct_output=False),              # one instance of task 1 leaves
        record(2, 0, valid_instruction=None, appropriate_input=None, correct_output=None),
    ])
    result = review.drop_judged_invalid(pool, verdicts)
    assert result.removed_tasks == (tasks.iloc[0]["task_id"],)
    assert result.removed_instances == 1
    kept = result.pool.set_index("task_id")
    assert tasks.iloc[0]["task_id"] not in kept.index
    assert kept.loc[tasks.iloc[1]["task_id"], "instances"] == [tasks.iloc[1]["instances"][0]]
    assert kept.loc[tasks.iloc[2]["task_id"], "instances"] == list(tasks.iloc[2]["instances"])
    assert len(result.pool) == len(pool) - 1


def test_drop_judged_invalid_removes_a_task_left_without_instances():
    pool = machine_pool(0, 1, instances_per_task=1)
    task = pool.iloc[1]
    verdicts = review.review_records([{**review.review_record(task, task["instances"][0], 1),
                                       "valid_instruction": True, "appropriate_input": False,
                                       "correct_output": True}])
    result = review.drop_judged_invalid(pool, verdicts)
    assert result.removed_tasks == (task["task_id"],)
    assert list(result.pool["task_id"]) == ["seed_task_0"]
