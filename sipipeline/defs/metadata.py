"""Metadata helpers shared by the assets and checks: one converter from plain values to
Dagster metadata, table outputs with schema and preview, content-hash data versions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
import pandas as pd

from sipipeline.defs.storage import table_version
from sipipeline.method.schema import SCHEMAS
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
                 extra: Mapping[str, Any] | None = None,
                 data_version: str | None = None) -> dg.Output:
    """Output with row count, column schema, a preview and a content-hash data version.

    `data_version` when the caller knows it more cheaply than hashing the whole table (the
    cumulative pool: its version chains the previous round's with the rows added).
    """
    schema = SCHEMAS[asset_name]
    metadata = {
        "dagster/row_count": dg.MetadataValue.int(len(df)),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=f.name, type=str(f.type)) for f in schema]),
        "preview": dg.MetadataValue.md(preview_markdown(df, preview_columns)),
        **metadata_from(extra or {}),
    }
    return dg.Output(df, metadata=metadata,
                     data_version=dg.DataVersion(data_version or table_version(df, asset_name)))
