"""Load and validate the human seed tasks, before any model is called."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from sipipeline.method.schema import pool_frame
from sipipeline.method.vocabulary import Origin


class SeedFileError(ValueError):
    """A seed file that cannot be used; the message names file, line and problem."""

    def __init__(self, path: str | os.PathLike, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path = str(path)
        self.line = line
        self.problem = problem


REQUIRED_FIELDS = {"id": str, "instruction": str, "instances": list, "is_classification": bool}


def _validated_record(path: Path, line_number: int, line: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise SeedFileError(
            path, line_number, f"invalid JSON ({error.msg} at column {error.colno})"
        ) from None
    if not isinstance(record, dict):
        raise SeedFileError(path, line_number, "expected a JSON object per line")
    for field, kind in REQUIRED_FIELDS.items():
        if field not in record:
            raise SeedFileError(path, line_number, f"missing field '{field}'")
        if not isinstance(record[field], kind):
            raise SeedFileError(
                path, line_number,
                f"field '{field}' must be a {kind.__name__}, got {type(record[field]).__name__}",
            )
    if not record["id"].strip():
        raise SeedFileError(path, line_number, "empty 'id'")
    if not record["instruction"].strip():
        raise SeedFileError(path, line_number, "empty 'instruction'")
    if not record["instances"]:
        raise SeedFileError(path, line_number, "'instances' must hold at least one instance")
    for position, instance in enumerate(record["instances"]):
        if not isinstance(instance, dict) or not isinstance(instance.get("input"), str) \
                or not isinstance(instance.get("output"), str):
            raise SeedFileError(
                path, line_number,
                f"instance {position} must be an object with string 'input' and 'output'",
            )
        if not instance["output"].strip():
            raise SeedFileError(path, line_number, f"instance {position} has an empty 'output'")
    return record


def load_seed_tasks(path: str | os.PathLike) -> pd.DataFrame:
    """Read a Self-Instruct seed file (JSON lines) into the pool schema.

    Every problem (bad JSON, missing or mistyped field, empty instruction, duplicate id) raises
    `SeedFileError` naming the file and line, so a run stops before spending on the model.
    """
    path = Path(path)
    if not path.is_file():
        raise SeedFileError(path, None, "seed file not found")
    rows: list[dict] = []
    first_line_of_id: dict[str, int] = {}
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            record = _validated_record(path, line_number, line)
            task_id = record["id"].strip()
            if task_id in first_line_of_id:
                raise SeedFileError(
                    path, line_number,
                    f"duplicate id '{task_id}' (first seen on line {first_line_of_id[task_id]})",
                )
            first_line_of_id[task_id] = line_number
            rows.append({
                "task_id": task_id,
                "instruction": record["instruction"].strip(),
                "origin": Origin.SEED,
                "round": 0,
                "is_classification": record["is_classification"],
                "instances": [
                    {"input": i["input"].strip(), "output": i["output"].strip()}
                    for i in record["instances"]
                ],
            })
    if not rows:
        raise SeedFileError(path, None, "no seed tasks in file")
    return pool_frame(rows)
