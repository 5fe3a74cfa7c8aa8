"""Metadata helpers shared by the assets and checks: one converter from plain values to
Dagster metadata, table outputs with schema and preview, content-hash data versions."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa

from sipipeline.method.schema import SCHEMAS, to_arrow
from sipipeline.reporting.markdown_render import markdown_table

SIMILARITY_THRESHOLD = "similarity_threshold"
"""Key under which `generated_instructions` records the novelty threshold it applied."""

PREVIEW_ROWS = 10
PREVIEW_CELL_CHARS = 120


def metadata_value(value: Any) -> dg.MetadataValue:
    """The Dagster metadata value for a plain Python value (JSON for anything structured)."""
    if isinstance(value, dg.MetadataValue):
        return value
    if isinstance(value, bool):
        return dg.MetadataValue.bool(value)
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    if isinstance(value, float):
        return dg.MetadataValue.float(value)
    if isinstance(value, str):
        return dg.MetadataValue.text(value)
    return dg.MetadataValue.json(value)


def metadata_from(values: Mapping[str, Any], prefix: str = "") -> dict[str, dg.MetadataValue]:
    """Every entry of `values` converted by `metadata_value`, keys optionally prefixed."""
    return {f"{prefix}{key}": metadata_value(value) for key, value in values.items()}


def content_version(df: pd.DataFrame, asset_name: str) -> str:
    """A data version from the stored content, so re-runs with new model output show as changed."""
    table = to_arrow(df, SCHEMAS.get(asset_name))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()[:24]


def _shortened(value: object, limit: int = PREVIEW_CELL_CHARS) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def preview_markdown(df: pd.DataFrame, columns: list[str], rows: int = PREVIEW_ROWS) -> str:
    """The first rows of a table as Markdown; model text is escaped cell by cell."""
    shown = df[columns].head(rows)
    if shown.empty:
        return "_(no rows)_"
    return markdown_table(columns, [[_shortened(value) for value in row]
                                    for row in shown.itertuples(index=False)])


def table_output(df: pd.DataFrame, asset_name: str, preview_columns: list[str],
                 extra: Mapping[str, Any] | None = None) -> dg.Output:
    """Output with row count, column schema, a preview and a content-hash data version."""
    schema = SCHEMAS[asset_name]
    metadata = {
        "dagster/row_count": dg.MetadataValue.int(len(df)),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=f.name, type=str(f.type)) for f in schema]),
        "preview": dg.MetadataValue.md(preview_markdown(df, preview_columns)),
        **metadata_from(extra or {}),
    }
    return dg.Output(df, metadata=metadata,
                     data_version=dg.DataVersion(content_version(df, asset_name)))
