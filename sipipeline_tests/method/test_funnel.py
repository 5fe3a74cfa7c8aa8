"""The whole funnel: one set of stage counts from candidates to "added to the pool"."""

from __future__ import annotations

from sipipeline.method.funnel import (
    ADDED,
    CANDIDATES,
    CLASSIFIED,
    INSTANCES_KEPT,
    INSTANCES_PARSED,
    NOVEL,
    STAGE_KEYS,
    funnel_lines,
    round_funnel,
    round_funnel_counts,
)
from sipipeline.method.schema import (
    CLASSIFICATION_SCHEMA,
    GENERATED_SCHEMA,
    INSTANCES_SCHEMA,
    frame,
    pool_frame,
)


def _candidate(i, reason=None, task_id=None):
    return {"candidate_id": f"gc-{i}", "round": 1, "instruction": f"instruction {i}",
            "status": "rejected" if reason else "accepted", "reject_reason": reason,
            "task_id": task_id}


def _instance(task_id, i, reason=None, text="x"):
    return {"instance_id": f"in-{task_id}-{i}", "task_id": task_id, "round": 1,
            "input": text, "output": text + "!", "status": "dropped" if reason else "kept",
            "drop_reason": reason}


def _round():
    generated = frame([
        _candidate(0, "unparseable"), _candidate(1, "too_short"), _candidate(2, "too_short"),
        _candidate(3, "blacklisted_word"), _candidate(4, "similar_to_pool"),
        _candidate(5, task_id="mi-a"), _candidate(6, task_id="mi-b"),
        _candidate(7, task_id="mi-c"), _candidate(8, task_id="mi-d"),
    ], GENERATED_SCHEMA)
    labels = frame([{"task_id": t, "round": 1, "is_classification": False}
                    for t in ("mi-a", "mi-b", "mi-c")], CLASSIFICATION_SCHEMA)  # mi-d unlabelled
    instances = frame([
        _instance("mi-a", 0), _instance("mi-a", 1, "duplicate"),
        _instance("mi-b", 0, "empty_output"),                     # parsed, then filtered out
        {**_instance("mi-c", 0, "no_valid_instance", ""), "output": ""},  # nothing parsed
    ], INSTANCES_SCHEMA)
    pool = pool_frame([{"task_id": "mi-a", "instruction": "instruction 5", "origin": "machine",
                        "round": 1, "is_classification": False, "instances": []},
                       {"task_id": "seed_task_0", "instruction": "s", "origin": "seed",
                        "round": 0, "is_classification": False, "instances": []}])
    return generated, labels, instances, pool


def test_every_stage_from_candidates_to_the_pool_is_counted_in_order():
    counts = round_funnel_counts(*_round(), round_number=1)
    assert list(counts) == list(STAGE_KEYS)
    assert counts[CANDIDATES] == 9
    assert counts["unparseable"] == 8 and counts["too_short"] == 6
    assert counts["blacklisted_word"] == 5 and counts["too_long"] == 6
    assert counts[NOVEL] == 4                     # similar_to_pool removed one
    assert counts[CLASSIFIED] == 3                # mi-d has no label
    assert counts[INSTANCES_PARSED] == 2          # mi-c: nothing parsed
    assert counts[INSTANCES_KEPT] == 1            # mi-b: its only instance was filtered out
    assert counts[ADDED] == 1


def test_stages_report_what_they_removed_and_lines_show_only_informative_ones():
    stages = round_funnel(*_round(), round_number=1)
    removed = {stage.key: stage.removed for stage in stages}
    assert removed["too_short"] == 2 and removed[NOVEL] == 1 and removed[INSTANCES_KEPT] == 1
    assert sum(removed.values()) == stages[0].count - stages[-1].count
    lines = funnel_lines(stages)
    assert lines[0].split()[0] == "9" and lines[-1].split()[0] == "1"
    assert not any("too long" in line for line in lines)
    assert any("minus too short" in line and "(−2)" in line for line in lines)


def test_without_a_pool_the_tasks_with_a_kept_instance_are_added():
    generated, labels, instances, _ = _round()
    assert round_funnel_counts(generated, labels, instances)[ADDED] == 1
