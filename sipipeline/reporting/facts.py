"""Per-task facts the statistics need, computed once when a task enters the pool.

Word count, ROUGE-L to the nearest seed, the root verb with its direct object, and the word
counts of each instance's input and output are stored as pool columns by `filtered_tasks`, so
each round's statistics parse and score only the tasks it added, whatever the pool size (the
cumulative lengths are flattened from Arrow columns, not recounted from text). Rows without
stored facts (a pool written by an older version, or verbs when spaCy was missing then) are
computed on the fly, with the same functions, so the numbers never depend on whether facts
were stored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sipipeline.method.schema import (
    INPUT_WORDS,
    INSTRUCTION_WORDS,
    OUTPUT_WORDS,
    ROOT_VERB,
    ROUGE_L_TO_SEED,
    VERB_OBJECT,
)
from sipipeline.method.vocabulary import Origin
from sipipeline.reporting import verbs
from sipipeline.similarity import max_rouge_l_to

FACT_COLUMNS = (INSTRUCTION_WORDS, ROUGE_L_TO_SEED, ROOT_VERB, VERB_OBJECT)
LENGTH_COLUMNS = (INPUT_WORDS, OUTPUT_WORDS)
_WORD_COUNTS = pa.list_(pa.int64())
NO_WORD = ""  # stored for "parsed, but no root verb / no object": None means "not parsed"


def word_count(text: object) -> int:
    """Whitespace-separated words, the paper's length unit."""
    return len(str(text).split()) if text is not None else 0


def instance_list(value: object) -> list[Mapping]:
    """A task's instances (None and NaN as none)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return [item for item in value if item is not None]


def instance_word_counts(instances: object) -> tuple[list[int], list[int]]:
    """Word counts of each instance's input (0 when empty) and output."""
    items = instance_list(instances)
    return ([word_count(str(i.get("input") or "").strip()) for i in items],
            [word_count(str(i.get("output") or "")) for i in items])


def _list_lengths(series: pd.Series) -> np.ndarray:
    if isinstance(series.dtype, pd.ArrowDtype):
        return pc.list_value_length(pa.array(series.array)).fill_null(0).to_numpy(
            zero_copy_only=False)
    return np.fromiter((len(instance_list(v)) for v in series), dtype=np.int64,
                       count=len(series))


def flat_word_counts(tasks: pd.DataFrame, column: str) -> np.ndarray:
    """Every value of a word-count list column, task after task (see `lengths_stored`)."""
    series = tasks[column]
    if isinstance(series.dtype, pd.ArrowDtype):
        return pc.list_flatten(pa.array(series.array)).to_numpy(zero_copy_only=False)
    return np.fromiter((n for value in series for n in instance_list(value)), dtype=np.int64)


def lengths_stored(tasks: pd.DataFrame) -> bool:
    """Whether every row carries its instance word counts (one per instance)."""
    if not all(column in tasks.columns for column in LENGTH_COLUMNS):
        return False
    wanted = _list_lengths(tasks["instances"])
    return all(np.array_equal(_list_lengths(tasks[column]), wanted)
               for column in LENGTH_COLUMNS)


def _with_lengths(pool: pd.DataFrame, from_row: int) -> pd.DataFrame:
    """Fill the instance word counts of rows from `from_row` on that lack them; the rows
    before stay as stored (Arrow slices, no conversion)."""
    wanted = _list_lengths(pool["instances"])[from_row:]
    present = [column in pool.columns for column in LENGTH_COLUMNS]
    stale = np.zeros(len(wanted), dtype=bool)
    for column, there in zip(LENGTH_COLUMNS, present, strict=True):
        stale |= (_list_lengths(pool[column])[from_row:] != wanted) if there else True
    if not stale.any():
        return pool
    tail_instances = pool["instances"].iloc[from_row:].tolist()
    counted = {int(offset): instance_word_counts(tail_instances[offset])
               for offset in np.flatnonzero(stale)}
    for index, column in enumerate(LENGTH_COLUMNS):
        head = (pa.array(pool[column].array, type=_WORD_COUNTS)[:from_row]
                if present[index] and isinstance(pool[column].dtype, pd.ArrowDtype) else
                pa.array([instance_list(v) for v in
                          (pool[column].iloc[:from_row] if present[index]
                           else [[]] * from_row)], type=_WORD_COUNTS))
        tail_values = (pool[column].iloc[from_row:].tolist() if present[index]
                       else [[]] * len(wanted))
        for offset, counts in counted.items():
            tail_values[offset] = counts[index]
        tail = pa.array([instance_list(v) for v in tail_values], type=_WORD_COUNTS)
        pool[column] = pd.Series(pd.arrays.ArrowExtensionArray(
            pa.chunked_array([head, tail], type=_WORD_COUNTS)), index=pool.index)
    return pool


def _missing(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.ones(len(frame), dtype=bool)
    return frame[column].isna().to_numpy()


def with_task_facts(pool: pd.DataFrame, from_row: int = 0) -> pd.DataFrame:
    """The pool with every fact column filled for the rows that lack it (a copy).

    Word counts and nearest-seed ROUGE-L are computed for rows without a word count; root verb
    and object for rows never parsed, when a spaCy model is available; instance word counts
    for rows whose counts do not match their instances. Rows before `from_row` are left as
    they are (a round fills only the rows it adds).
    """
    pool = pool.copy()
    for column in FACT_COLUMNS:
        if column not in pool.columns:
            pool[column] = None
    pool[INSTRUCTION_WORDS] = pool[INSTRUCTION_WORDS].astype(object)
    pool[ROUGE_L_TO_SEED] = pool[ROUGE_L_TO_SEED].astype("float64")
    origin = pool["origin"].astype(str).to_numpy()
    instructions = pool["instruction"].astype(str).tolist()

    considered = np.arange(len(pool)) >= from_row
    todo = np.flatnonzero(_missing(pool, INSTRUCTION_WORDS) & considered)
    if len(todo):
        seeds = [text for text, kind in zip(instructions, origin, strict=True)
                 if kind == Origin.SEED]
        machine = [int(i) for i in todo if origin[i] == Origin.MACHINE]
        scores = max_rouge_l_to([instructions[i] for i in machine], seeds)
        column = pool[ROUGE_L_TO_SEED].to_numpy(copy=True)
        column[machine] = scores
        pool[ROUGE_L_TO_SEED] = column
        counts = pool[INSTRUCTION_WORDS].to_numpy(copy=True)
        for i in todo:
            counts[i] = word_count(instructions[i])
        pool[INSTRUCTION_WORDS] = counts

    unparsed = np.flatnonzero(_missing(pool, ROOT_VERB) & considered)
    if len(unparsed):
        parsed = verbs.extract_verb_nouns([instructions[i] for i in unparsed])
        if parsed.available:
            verb_column = pool[ROOT_VERB].to_numpy(copy=True)
            object_column = pool[VERB_OBJECT].to_numpy(copy=True)
            for i, verb, noun in zip(unparsed, parsed.pairs["verb"], parsed.pairs["noun"],
                                     strict=True):
                verb_column[i] = NO_WORD if _absent(verb) else verb
                object_column[i] = NO_WORD if _absent(noun) else noun
            pool[ROOT_VERB], pool[VERB_OBJECT] = verb_column, object_column
    return _with_lengths(pool, from_row)


def _absent(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def verb_pairs(tasks: pd.DataFrame) -> pd.DataFrame:
    """`instruction, verb, noun` of parsed tasks in the shape `verbs` uses (None = none found)."""
    def as_pair_value(value: object) -> str | None:
        return None if _absent(value) or value == NO_WORD else str(value)

    return pd.DataFrame({
        "instruction": tasks["instruction"].astype(str).tolist(),
        "verb": [as_pair_value(v) for v in tasks[ROOT_VERB]],
        "noun": [as_pair_value(v) for v in tasks[VERB_OBJECT]],
    }, columns=verbs.PAIR_COLUMNS)


def all_parsed(tasks: pd.DataFrame) -> bool:
    """Whether every row carries a root-verb parse (spaCy was available for all of them)."""
    return not _missing(tasks, ROOT_VERB).any()
