"""Load and validate the human seed tasks, before any model is called."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from sipipeline.method.schema import pool_frame
from sipipeline.method.vocabulary import Origin, duplicate_key


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


#: Size limits, checked while reading (never after reading it all). Real seed files are far
#: smaller: the 175 Self-Instruct seeds take about 100 KB, their longest line under 2 KB.
MAX_SEED_FILE_BYTES = 64 * 1024 * 1024
MAX_SEED_LINE_BYTES = 1024 * 1024
UTF8_BOM = b"\xef\xbb\xbf"


def _checked_file_size(path: Path, max_file_bytes: int) -> int:
    if path.is_dir():
        raise SeedFileError(path, None, "is a directory, not a seed file")
    if not path.exists():
        raise SeedFileError(path, None, "seed file not found")
    if not path.is_file():
        raise SeedFileError(path, None, "is not a regular file")
    size = path.stat().st_size
    if size > max_file_bytes:
        raise SeedFileError(path, None, f"is {size} bytes, over the {max_file_bytes}-byte limit "
                                        "for a seed file")
    return size


def _text_lines(path: Path, max_file_bytes: int, max_line_bytes: int):
    """`(line_number, text)` per line, decoded as UTF-8 (a leading BOM dropped), within limits."""
    read = 0
    with path.open("rb") as handle:
        line_number = 0
        while raw := handle.readline(max_line_bytes + 2):
            line_number += 1
            read += len(raw)
            if read > max_file_bytes:
                raise SeedFileError(path, line_number, f"the file grew past the "
                                                       f"{max_file_bytes}-byte limit while read")
            content = raw.rstrip(b"\r\n")
            if line_number == 1 and content.startswith(UTF8_BOM):
                content = content[len(UTF8_BOM):]
            if len(content) > max_line_bytes:
                raise SeedFileError(path, line_number, f"line longer than the "
                                                       f"{max_line_bytes}-byte limit")
            try:
                yield line_number, content.decode("utf-8")
            except UnicodeDecodeError as error:
                raise SeedFileError(
                    path, line_number, f"not UTF-8 text (byte 0x{content[error.start]:02x} at "
                                       f"byte {error.start + 1} of the line)") from None


def load_seed_tasks(path: str | os.PathLike, *, max_file_bytes: int = MAX_SEED_FILE_BYTES,
                    max_line_bytes: int = MAX_SEED_LINE_BYTES) -> pd.DataFrame:
    """Read a Self-Instruct seed file (JSON lines, UTF-8, a BOM allowed) into the pool schema.

    Every problem (not UTF-8, over a size limit, bad JSON, missing or mistyped field, empty
    instruction, duplicate id, the same instruction under two ids) raises `SeedFileError`
    naming the file and line, so a run stops before spending on the model.
    """
    path = Path(path)
    try:
        _checked_file_size(path, max_file_bytes)
        rows: list[dict] = []
        first_line_of_id: dict[str, int] = {}
        first_of_instruction: dict[str, tuple[int, str]] = {}
        for line_number, line in _text_lines(path, max_file_bytes, max_line_bytes):
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
            same = duplicate_key(record["instruction"])
            if same in first_of_instruction:
                first_line, first_id = first_of_instruction[same]
                raise SeedFileError(
                    path, line_number,
                    f"the instruction of '{task_id}' duplicates that of '{first_id}' on line "
                    f"{first_line} (same text after case, punctuation and space folding)",
                )
            first_of_instruction[same] = (line_number, task_id)
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
    except OSError as error:
        raise SeedFileError(path, None, f"cannot be read ({error.strerror or error})") from None
    if not rows:
        raise SeedFileError(path, None, "no seed tasks in file")
    return pool_frame(rows)
