"""A pool with duplicates, seeds and multi-line Unicode inputs, for the export tests."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from sipipeline.method.schema import POOL_SCHEMA, pool_frame, to_arrow


def machine_task(task_id, round_number, instruction, instances, is_classification=False):
    return {"task_id": task_id, "instruction": instruction, "origin": "machine",
            "round": round_number, "is_classification": is_classification,
            "instances": [{"input": i, "output": o} for i, o in instances],
            "model": "gemma3-270m-q4", "request_id": f"r-{task_id}", "in_context_ids": [],
            "max_rouge_l": 0.3, "mean_rouge_l": 0.1, "most_similar": []}


def export_pool(n_machine: int = 40) -> pd.DataFrame:
    rows = [{"task_id": f"seed_task_{i}", "instruction": f"Seed instruction number {i}.",
             "origin": "seed", "round": 0, "is_classification": i == 0,
             "instances": [{"input": "" if i % 2 else f"seed input {i}",
                            "output": f"seed output {i}"}]} for i in range(3)]
    for k in range(n_machine):
        instances = [(f"input {k} – ünïcode \"quoted\"\nsecond line" if k % 3 else "",
                      f"output {k}"), (f"another input {k}", f"another output {k}")]
        rows.append(machine_task(f"mi-{k:04d}", 1 + k % 2, f"Instruction {k}: do   thing {k}.",
                             instances[: 1 + k % 2], is_classification=k % 5 == 0))
    # an exact duplicate of mi-0000's record (after whitespace normalisation) in a later round
    rows.append(machine_task("mi-dup", 2, "Instruction 0: do thing 0.", [("", "output 0")]))
    return pool_frame(rows)


def expected_records(pool: pd.DataFrame, include_seeds: bool) -> set[tuple[str, str, str]]:
    records = set()
    for task in pool.itertuples():
        if task.origin == "seed" and not include_seeds:
            continue
        for instance in task.instances:
            records.add((" ".join(task.instruction.split()), " ".join(instance["input"].split()),
                         " ".join(instance["output"].split())))
    return records


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def store_rounds(base: Path, rounds: dict[str, pd.DataFrame]) -> None:
    """Write `filtered_tasks/<round>.parquet` files as the pipeline stores them."""
    folder = base / "filtered_tasks"
    folder.mkdir(parents=True)
    for key, frame in rounds.items():
        pq.write_table(to_arrow(frame, POOL_SCHEMA), folder / f"{key}.parquet")
