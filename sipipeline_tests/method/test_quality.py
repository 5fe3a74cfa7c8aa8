"""The quality table, Wilson intervals and Cohen's kappa (hand-checked examples)."""

from __future__ import annotations

import math

import pytest

from sipipeline.method import quality, review


def test_wilson_interval_matches_a_hand_computed_value():
    # 8 of 10, z = 1.96: centre (0.8 + 0.19208) / 1.38415 = 0.71671, half 0.22681
    low, high = quality.wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)
    assert quality.wilson_interval(0, 5)[0] == 0.0
    assert quality.wilson_interval(5, 5)[1] == pytest.approx(1.0)
    assert all(math.isnan(v) for v in quality.wilson_interval(0, 0))
    with pytest.raises(ValueError):
        quality.wilson_interval(3, 2)


def test_kappa_of_the_textbook_example():
    # 50 items: both yes 20, first yes / second no 5, first no / second yes 10, both no 15.
    # p_o = 35/50 = 0.7; p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.2 / 0.5 = 0.4.
    first = [True] * 20 + [True] * 5 + [False] * 10 + [False] * 15
    second = [True] * 20 + [False] * 5 + [True] * 10 + [False] * 15
    assert quality.cohen_kappa(first, second) == pytest.approx(0.4)
    assert quality.cohen_kappa(first, first) == pytest.approx(1.0)
    assert quality.cohen_kappa([True, False], [False, True]) == pytest.approx(-1.0)
    assert math.isnan(quality.cohen_kappa([True, True], [True, True]))
    assert math.isnan(quality.cohen_kappa([], []))
    with pytest.raises(ValueError):
        quality.cohen_kappa([True], [])


def verdicts(rows: list[tuple]) -> object:
    return review.review_records([
        {"record_id": f"r{i}", "task_id": f"t{i}", "valid_instruction": v,
         "appropriate_input": a, "correct_output": c} for i, (v, a, c) in enumerate(rows)])


def test_quality_table_counts_unparseable_apart():
    table = quality.quality_table(verdicts([
        (True, True, True), (True, False, True), (False, None, False), (None, True, True)]))
    rows = table.set_index("measure")
    assert rows.loc["valid_instruction", ["yes", "no", "unparseable"]].tolist() == [2, 1, 1]
    assert rows.loc["valid_instruction", "share"] == pytest.approx(2 / 3)
    assert rows.loc["appropriate_input", ["yes", "no", "unparseable"]].tolist() == [2, 1, 1]
    assert rows.loc["correct_output", ["yes", "no", "unparseable"]].tolist() == [3, 1, 0]
    # all fields: r0 yes, r1 no, r2 and r3 have an unparseable answer
    assert rows.loc["all_fields_valid", ["yes", "no", "unparseable"]].tolist() == [1, 1, 2]
    assert rows.loc["correct_output", "paper"] == 0.58
    low, high = quality.wilson_interval(3, 4)
    assert rows.loc["correct_output", "ci_low"] == pytest.approx(low)
    assert rows.loc["correct_output", "ci_high"] == pytest.approx(high)


def test_agreement_joins_on_record_and_skips_unanswered():
    human = verdicts([(True, True, True), (True, False, None), (False, True, True)])
    judge = verdicts([(True, True, False), (True, True, True), (True, True, True),
                      (False, False, False)])  # r3 has no human answer
    table = quality.agreement_table(human, judge).set_index("measure")
    assert table.loc["valid_instruction", "pairs"] == 3
    assert table.loc["valid_instruction", "agreement"] == pytest.approx(2 / 3)
    assert table.loc["correct_output", "pairs"] == 2  # r1's human answer is missing
    assert table.loc["correct_output", "kappa"] == pytest.approx(
        quality.cohen_kappa([True, True], [False, True]))
