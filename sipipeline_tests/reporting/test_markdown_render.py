"""Markdown rendering of tables and of the statistics' sections."""

from __future__ import annotations

from sipipeline.reporting.markdown_render import (
    markdown_table,
    render_markdown,
    render_sections,
)
from sipipeline.reporting.tables import ReportSection, ReportTable


def test_table_aligns_numeric_columns_right():
    text = markdown_table(["name", "count"], [["a", "1,234"]], numeric_columns={1})
    assert text.splitlines() == ["| name | count |", "|---|---:|", "| a | 1,234 |"]


def test_sections_render_headings_tables_empty_text_and_notes():
    sections = [
        ReportSection("Numbers", 2, ReportTable.of(["k", "v"], [["x", "1"]], [1])),
        ReportSection("Nothing here", 3, None, empty_text="No rows.", notes=("A note.",)),
    ]
    assert render_sections(sections) == (
        "## Numbers\n\n| k | v |\n|---|---:|\n| x | 1 |\n\n"
        "### Nothing here\n\n_No rows._\n\nA note.\n")


def test_stats_markdown_shows_every_section(two_rounds):
    _, _, stats = two_rounds
    text = render_markdown(stats)
    assert text.startswith("## Dataset statistics, round 2\n\n| metric | round 2 |")
    assert "### Instruction funnel" in text
    assert "### Top root verbs and their direct-object nouns" in text
    assert "Verb–noun parsing: " in text
