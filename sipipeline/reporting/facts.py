"""Per-task facts the statistics need, computed once when a task enters the pool.

Word count, ROUGE-L to the nearest seed and the root verb with its direct object are stored as
pool columns by `filtered_tasks`, so each round's statistics parse and score only the tasks it
added, whatever the pool size. Rows without stored facts (a pool written by an older version,
or verbs when spaCy was missing then) are computed on the fly, with the same functions, so the
numbers never depend on whether facts were stored.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sipipeline.method.schema import (
    INSTRUCTION_WORDS,
    ROOT_VERB,
    ROUGE_L_TO_SEED,
    VERB_OBJECT,
)
from sipipeline.method.vocabulary import Origin
from sipipeline.reporting import verbs
from sipipeline.similarity import max_rouge_l_to

FACT_COLUMNS = (INSTRUCTION_WORDS, ROUGE_L_TO_SEED, ROOT_VERB, VERB_OBJECT)
NO_WORD = ""  # stored for "parsed, but no root verb / no object": None means "not parsed"


def word_count(text: object) -> int:
    """Whitespace-separated words, the paper's length unit."""
    return len(str(text).split()) if text is not None else 0


def _missing(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.ones(len(frame), dtype=bool)
    return frame[column].isna().to_numpy()


def with_task_facts(pool: pd.DataFrame, from_row: int = 0) -> pd.DataFrame:
    """The pool with every fact column filled for the rows that lack it (a copy).

    Word counts and nearest-seed ROUGE-L are computed for rows without a word count; root verb
    and object for rows never parsed, when a spaCy model is available. Rows before `from_row`
    are left as they are (a round fills only the rows it adds).
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
    return pool


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
