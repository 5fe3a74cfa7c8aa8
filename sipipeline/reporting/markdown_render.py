"""Markdown rendering: table cells safe for any text, tables, and the statistics' sections.

Model text can hold `|`, backslashes and line breaks, each of which would end a cell or a row
of a Markdown table. `markdown_cell` is the one place that makes any value safe as a cell;
every Markdown table sipipeline writes goes through it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence

import pandas as pd

from sipipeline.reporting.stats import DatasetStats
from sipipeline.reporting.tables import ReportSection, ReportTable, stats_sections

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def markdown_cell(value: object) -> str:
    """`value` as one Markdown table cell: `\\` and `|` escaped, line breaks become spaces."""
    text = "" if value is None else str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    return _LINE_BREAK.sub(" ", text)


def markdown_table(columns: Sequence[object], rows: Iterable[Sequence[object]],
                   numeric_columns: Collection[int] = ()) -> str:
    """A Markdown table of escaped cells; `numeric_columns` are right-aligned."""
    aligns = ["---:" if i in numeric_columns else "---" for i in range(len(columns))]
    lines = ["| " + " | ".join(markdown_cell(c) for c in columns) + " |",
             "|" + "|".join(aligns) + "|"]
    lines += ["| " + " | ".join(markdown_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_frame(frame: pd.DataFrame) -> str:
    """A DataFrame (without its index) as a Markdown table of escaped cells."""
    return markdown_table(list(frame.columns), frame.itertuples(index=False, name=None))


def render_table(table: ReportTable) -> str:
    """One `ReportTable` as Markdown."""
    return markdown_table(table.columns, table.rows, table.numeric_columns)


def render_sections(sections: Sequence[ReportSection]) -> str:
    """Headings, tables (or their empty text, in italics) and notes as paragraphs."""
    parts: list[str] = []
    for section in sections:
        if parts:
            parts.append("")
        body = (render_table(section.table) if section.table is not None
                else f"_{section.empty_text}_")
        parts += ["#" * section.level + " " + section.title, "", body]
        parts += ["\n" + note for note in section.notes]
    return "\n".join(parts) + "\n"


def render_markdown(stats: DatasetStats) -> str:
    """Summary, funnel and top-verb tables (the stats asset's Markdown metadata)."""
    return render_sections(stats_sections(stats))
