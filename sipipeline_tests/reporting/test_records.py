"""Export records: deduplication and the train/validation split."""

from __future__ import annotations

import pandas as pd
import pytest

from sipipeline.reporting.records import assign_splits, deduplicate


def test_deduplicate_keeps_the_first_occurrence():
    records = pd.DataFrame({"instruction": ["a  b", "a b", "a b"], "input": ["", " ", "x"],
                            "output": ["o", "o", "o"], "task_id": ["t1", "t2", "t3"]})
    assert list(deduplicate(records)["task_id"]) == ["t1", "t3"]


def test_splits_are_per_task_and_never_empty_with_two_tasks():
    records = pd.DataFrame({"instruction": ["Task A.", "Task  A.", "Task B."],
                            "input": ["1", "2", "3"], "output": ["x", "y", "z"]})
    sides = assign_splits(records, 0.000001, seed=1).tolist()
    assert sides[0] == sides[1]  # same task after whitespace normalisation
    assert set(sides) == {"train", "validation"}
    assert set(assign_splits(records, 0.0, seed=1)) == {"train"}
    with pytest.raises(ValueError, match="validation_fraction"):
        assign_splits(records, 1.0, seed=1)
