"""Dataset records for export: one row per (task, instance), deduplicated and split.

Records are deduplicated on whitespace-normalised instruction, input and output. The
train/validation split is decided per task with a seeded hash, so a task never straddles the
split and keeps its side as later rounds add tasks; each split is shuffled with the same seed.
"""

from __future__ import annotations

import hashlib
import random

import pandas as pd

from sipipeline.method.vocabulary import Origin, collapse_whitespace

SPLITS = ("train", "validation")
RECORD_COLUMNS = ["task_id", "origin", "round", "is_classification", "model", "instruction",
                  "input", "output"]


def dataset_records(pool: pd.DataFrame, include_seeds: bool = False) -> pd.DataFrame:
    """One row per (task, instance) of the pool's machine tasks (and seeds when asked)."""
    rows = []
    for task in pool.itertuples(index=False):
        origin = str(task.origin)
        if origin == Origin.SEED and not include_seeds:
            continue
        instances = task.instances if task.instances is not None else []
        for instance in instances:
            if instance is None:
                continue
            output = str(instance.get("output") or "").strip()
            if not output:
                continue
            rows.append((str(task.task_id), origin, int(task.round), bool(task.is_classification),
                         str(task.model or ""), str(task.instruction).strip(),
                         str(instance.get("input") or "").strip(), output))
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)


def _normalised(column: pd.Series) -> pd.Series:
    return column.map(lambda text: collapse_whitespace(str(text)))


def deduplicate(records: pd.DataFrame) -> pd.DataFrame:
    """Drop records whose whitespace-normalised (instruction, input, output) appeared before."""
    if not len(records):
        return records.copy()
    key = (_normalised(records["instruction"]) + "\x00" + _normalised(records["input"])
           + "\x00" + _normalised(records["output"]))
    return records[~key.duplicated()].reset_index(drop=True)


def _unit_hash(seed: int, text: str) -> float:
    digest = hashlib.sha256(f"{seed}\x00{text}".encode()).hexdigest()
    return int(digest[:16], 16) / 2 ** 64


def assign_splits(records: pd.DataFrame, validation_fraction: float, seed: int) -> pd.Series:
    """"train"/"validation" per record, decided per task (normalised instruction).

    A task goes to validation when a seeded SHA-256 of its instruction falls below the
    fraction, so the assignment is reproducible and stable as the dataset grows. With a
    positive fraction and at least two tasks, each split gets at least one task.
    """
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    keys = _normalised(records["instruction"])
    unique = list(dict.fromkeys(keys))
    position = {key: _unit_hash(seed, key) for key in unique}
    validation = {key for key, u in position.items() if u < validation_fraction}
    if validation_fraction > 0 and len(unique) >= 2:
        if not validation:
            validation = {min(unique, key=position.__getitem__)}
        if len(validation) == len(unique):
            validation.discard(max(unique, key=position.__getitem__))
    return keys.map(lambda key: "validation" if key in validation else "train")


def prepare_splits(pool: pd.DataFrame, include_seeds: bool = False,
                   validation_fraction: float = 0.05, seed: int = 42
                   ) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """Deduplicated, split and seed-shuffled records, plus counts for the dataset card."""
    records = dataset_records(pool, include_seeds)
    unique = deduplicate(records)
    split = assign_splits(unique, validation_fraction, seed) if len(unique) else pd.Series(
        [], dtype=object)
    splits = {}
    for name in SPLITS:
        part = unique[(split == name).to_numpy()] if len(unique) else unique
        order = list(range(len(part)))
        random.Random(f"{seed}:{name}").shuffle(order)
        splits[name] = part.iloc[order].reset_index(drop=True)
    counts = {"records_before_dedupe": len(records), "duplicates_removed":
              len(records) - len(unique), "records": len(unique)}
    return splits, counts
