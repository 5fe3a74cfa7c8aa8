"""Arrow schemas of each stored asset, so every round's Parquet has the same columns and types."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sipipeline.method.vocabulary import duplicate_hash

INSTANCE = pa.struct([("input", pa.string()), ("output", pa.string())])
#: A lineage neighbour: the task by id and its ROUGE-L score. Its text is looked up when shown
#: (in the pool, or the round's generated instructions), so the pool does not store every
#: instruction ten more times.
SIMILAR = pa.struct([("task_id", pa.string()), ("score", pa.float64())])

#: Per-task facts for the statistics, stored when a task enters the pool (see
#: `sipipeline.reporting.facts`); null until computed.
INSTRUCTION_WORDS = "instruction_words"
ROUGE_L_TO_SEED = "rouge_l_to_seed"
ROOT_VERB = "root_verb"
VERB_OBJECT = "verb_object"
#: Word counts of the task's instance inputs and outputs, in instance order (0 = empty input).
INPUT_WORDS = "input_words"
OUTPUT_WORDS = "output_words"
#: `vocabulary.duplicate_hash` of the instruction, set when the row is built (`pool_frame`).
DUPLICATE_HASH = "duplicate_hash"

POOL_SCHEMA = pa.schema([
    ("task_id", pa.string()),
    ("instruction", pa.string()),
    ("origin", pa.string()),
    ("round", pa.int64()),
    ("is_classification", pa.bool_()),
    ("instances", pa.list_(INSTANCE)),
    ("model", pa.string()),
    ("request_id", pa.string()),
    ("in_context_ids", pa.list_(pa.string())),
    ("max_rouge_l", pa.float64()),
    ("mean_rouge_l", pa.float64()),
    ("most_similar", pa.list_(SIMILAR)),
    (INSTRUCTION_WORDS, pa.int64()),
    (ROUGE_L_TO_SEED, pa.float64()),
    (ROOT_VERB, pa.string()),
    (VERB_OBJECT, pa.string()),
    (INPUT_WORDS, pa.list_(pa.int64())),
    (OUTPUT_WORDS, pa.list_(pa.int64())),
    (DUPLICATE_HASH, pa.int64()),
])

GENERATED_SCHEMA = pa.schema([
    ("candidate_id", pa.string()),
    ("round", pa.int64()),
    ("request_id", pa.string()),
    ("prompt", pa.string()),
    ("in_context_ids", pa.list_(pa.string())),
    ("position", pa.int64()),
    ("instruction", pa.string()),
    ("model", pa.string()),
    ("finish_reason", pa.string()),
    ("parsed_as", pa.string()),
    ("status", pa.string()),
    ("reject_reason", pa.string()),
    ("max_rouge_l", pa.float64()),
    ("mean_rouge_l", pa.float64()),
    ("most_similar", pa.list_(SIMILAR)),
    ("task_id", pa.string()),
    ("journal_key", pa.string()),
])

CLASSIFICATION_SCHEMA = pa.schema([
    ("task_id", pa.string()),
    ("round", pa.int64()),
    ("instruction", pa.string()),
    ("is_classification", pa.bool_()),
    ("raw_answer", pa.string()),
    ("request_id", pa.string()),
    ("model", pa.string()),
    ("parsed_as", pa.string()),
    ("label_problem", pa.string()),
    ("journal_key", pa.string()),
])

INSTANCES_SCHEMA = pa.schema([
    ("instance_id", pa.string()),
    ("task_id", pa.string()),
    ("round", pa.int64()),
    ("instruction", pa.string()),
    ("is_classification", pa.bool_()),
    ("input", pa.string()),
    ("output", pa.string()),
    ("generation", pa.string()),
    ("request_id", pa.string()),
    ("model", pa.string()),
    ("status", pa.string()),
    ("drop_reason", pa.string()),
    ("parsed_as", pa.string()),
    ("journal_key", pa.string()),
])

#: One reviewed record (a task and one of its instances) with the answers to the paper's three
#: questions: True/False, or null when the answer could not be parsed (`parse_error` says why).
REVIEW_SCHEMA = pa.schema([
    ("record_id", pa.string()),
    ("round", pa.int64()),
    ("task_id", pa.string()),
    ("instruction", pa.string()),
    ("input", pa.string()),
    ("output", pa.string()),
    ("is_classification", pa.bool_()),
    ("source", pa.string()),
    ("valid_instruction", pa.bool_()),
    ("appropriate_input", pa.bool_()),
    ("correct_output", pa.bool_()),
    ("rating", pa.string()),
    ("reason", pa.string()),
    ("parse_error", pa.string()),
    ("raw_answer", pa.string()),
    ("reviewer", pa.string()),
])

_POOL_DEFAULTS: Mapping[str, object] = {
    "model": "", "request_id": "", "in_context_ids": (), "max_rouge_l": math.nan,
    "mean_rouge_l": math.nan, "most_similar": (), ROUGE_L_TO_SEED: math.nan,
}


def frame(rows: Iterable[Mapping[str, object]], schema: pa.Schema) -> pd.DataFrame:
    """Build a DataFrame with exactly the schema's columns, in its order."""
    rows = list(rows)
    data = {name: [row.get(name) for row in rows] for name in schema.names}
    return pd.DataFrame(data, columns=schema.names)


def pool_frame(rows: Iterable[Mapping[str, object]]) -> pd.DataFrame:
    """A pool DataFrame; seed rows may omit the machine-lineage columns. Nested columns are
    Arrow-backed, like a pool read from the store (see `from_arrow`), so pools concatenate
    without turning every stored row into Python objects."""
    filled = []
    for row in rows:
        full = dict(row)
        for name, default in _POOL_DEFAULTS.items():
            if full.get(name) is None:
                full[name] = list(default) if isinstance(default, tuple) else default
        if full.get(DUPLICATE_HASH) is None:
            full[DUPLICATE_HASH] = duplicate_hash(str(full.get("instruction") or ""))
        filled.append(full)
    return from_arrow(to_arrow(frame(filled, POOL_SCHEMA), POOL_SCHEMA), nested_as_arrow=True)


SCHEMAS: dict[str, pa.Schema] = {
    "seed_pool": POOL_SCHEMA,
    "filtered_tasks": POOL_SCHEMA,
    "generated_instructions": GENERATED_SCHEMA,
    "classification_labels": CLASSIFICATION_SCHEMA,
    "instances": INSTANCES_SCHEMA,
    "quality_review": REVIEW_SCHEMA,
    "human_review": REVIEW_SCHEMA,
}


def to_arrow(df: pd.DataFrame, schema: pa.Schema | None) -> pa.Table:
    """Convert with the declared schema (so empty rounds keep their types)."""
    if schema is None:
        return pa.Table.from_pandas(df, preserve_index=False)
    missing = [name for name in schema.names if name not in df.columns]
    if missing:
        raise ValueError(f"DataFrame lacks columns {missing} required by the stored schema")
    columns = {}
    for field in schema:
        series = df[field.name]
        if isinstance(series.dtype, pd.ArrowDtype) and series.dtype.pyarrow_dtype == field.type:
            columns[field.name] = pa.array(series.array, type=field.type)  # already Arrow
            continue
        values = series.tolist()
        columns[field.name] = pa.array(
            [None if is_missing(v) and not pa.types.is_floating(field.type) else v
             for v in values],
            type=field.type, from_pandas=True,
        )
    return pa.table(columns, schema=schema)


def is_missing(value: object) -> bool:
    """None or NaN: how a missing value arrives from pandas."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def conform(df: pd.DataFrame, schema: pa.Schema | None) -> pd.DataFrame:
    """A table stored before a column was added gets that column (missing values), so old
    rounds stay readable and writable."""
    if schema is None:
        return df
    for name in schema.names:
        if name not in df.columns:
            is_list = pa.types.is_list(schema.field(name).type)
            df[name] = [[] if is_list else None for _ in range(len(df))]
    return df


def from_arrow(table: pa.Table, nested_as_arrow: bool = False) -> pd.DataFrame:
    """Back to pandas with plain Python lists/dicts in nested columns (easy to work with).

    `nested_as_arrow`: nested columns stay Arrow arrays (`pd.ArrowDtype`; a missing list is an
    empty one). Reading a value still gives Python lists and dicts, but a whole pool then holds
    a few hundred bytes per task instead of a dozen Python objects per task.
    """
    data = {}
    for name in table.column_names:
        column = table.column(name)
        nested = pa.types.is_list(column.type) or pa.types.is_struct(column.type)
        if nested and nested_as_arrow:
            if pa.types.is_list(column.type) and column.null_count:
                column = pc.fill_null(column, pa.scalar([], type=column.type))
            data[name] = pd.Series(pd.arrays.ArrowExtensionArray(column), copy=False)
        elif nested:
            data[name] = [[] if v is None and pa.types.is_list(column.type) else v
                          for v in column.to_pylist()]
        else:
            data[name] = column.to_pandas()
    return pd.DataFrame(data, columns=table.column_names)
