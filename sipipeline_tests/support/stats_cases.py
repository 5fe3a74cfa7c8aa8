"""A small synthetic pool over two rounds and its candidates, for the reporting tests."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from sipipeline.method.schema import (
    CLASSIFICATION_SCHEMA,
    GENERATED_SCHEMA,
    INSTANCES_SCHEMA,
    frame,
    pool_frame,
)

SEEDS_TEXT = [
    "Write a poem about the ocean.",
    "Give me a list of three fruits that are red.",
    "Is there anything I can eat for breakfast that has protein?",
    "Classify the sentiment of the sentence into positive or negative.",
]


def machine_task(task_id, round_number, instruction, instances, is_classification=False):
    return {"task_id": task_id, "instruction": instruction, "origin": "machine",
            "round": round_number, "is_classification": is_classification,
            "instances": [{"input": i, "output": o} for i, o in instances],
            "model": "fake-model", "request_id": f"r-{task_id}", "in_context_ids": [],
            "max_rouge_l": 0.2, "mean_rouge_l": 0.1, "most_similar": []}


def seed_task(task_id, instruction):
    return {"task_id": task_id, "instruction": instruction, "origin": "seed", "round": 0,
            "is_classification": False, "instances": [{"input": "", "output": "seed output"}]}


def synthetic_pool() -> pd.DataFrame:
    rows = [seed_task(f"seed_task_{i}", text) for i, text in enumerate(SEEDS_TEXT)]
    rows += [
        machine_task("mi-1", 1, "Write a poem about the ocean.", [("", "waves and salt")]),
        machine_task("mi-2", 1, "Find the largest number in the list.",
              [("1 5 3", "5"), ("7 2", "7")]),
        machine_task("mi-3", 2, "Classify the sentence as positive or negative.",
              [("I love it", "positive"), ("I hate it", "negative"), ("", "positive")],
              is_classification=True),
        machine_task("mi-4", 2, "Give me three colors.", [("", "red green blue")]),
        machine_task("mi-5", 2, "Translate this sentence into French please.",
              [("good morning to you", "bonjour à vous")]),
    ]
    return pool_frame(rows)


def generated_candidates(round_number, accepted, rejected_reasons, task_ids=None):
    task_ids = task_ids or [None] * len(accepted)
    rows = [{"candidate_id": f"c{round_number}-{i}", "round": round_number, "instruction": text,
             "status": "accepted", "reject_reason": None, "task_id": task_id}
            for i, (text, task_id) in enumerate(zip(accepted, task_ids, strict=True))]
    rows += [{"candidate_id": f"x{round_number}-{i}", "round": round_number, "instruction": "x",
              "status": "rejected", "reject_reason": reason}
             for i, reason in enumerate(rejected_reasons)]
    return frame(rows, GENERATED_SCHEMA)


def through_parquet(table: pd.DataFrame) -> pd.DataFrame:
    return pa.Table.from_pandas(table, preserve_index=False).to_pandas()


def round_tables(pool: pd.DataFrame, round_number: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Labels and instances of a round whose accepted tasks are the pool's tasks of that round
    (every instance kept)."""
    machine = pool[(pool["origin"] == "machine") & (pool["round"] == round_number)]
    labels = frame([{"task_id": t.task_id, "round": round_number, "instruction": t.instruction,
                     "is_classification": t.is_classification, "raw_answer": "No"}
                    for t in machine.itertuples()], CLASSIFICATION_SCHEMA)
    instances = frame([{"instance_id": f"in-{t.task_id}-{i}", "task_id": t.task_id,
                        "round": round_number, "input": item["input"],
                        "output": item["output"], "status": "kept", "drop_reason": None}
                       for t in machine.itertuples()
                       for i, item in enumerate(t.instances)], INSTANCES_SCHEMA)
    return labels, instances
