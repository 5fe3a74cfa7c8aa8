"""Markdown rendering of tables and of the statistics' sections."""

from __future__ import annotations

import string
from dataclasses import replace

import pandas as pd

from sipipeline.reporting.markdown_render import (
    markdown_cell,
    markdown_frame,
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
    assert "### Funnel: candidates to the pool" in text
    assert "### Top root verbs and their direct-object nouns" in text
    assert "Verb–noun parsing: " in text


def _cells(line: str) -> list[str]:
    """Split one table row as cmark-gfm does: at pipes not preceded by a backslash."""
    inner = line.strip()[1:-1]
    cells, start = [], 0
    for position, char in enumerate(inner):
        if char == "|" and (position == 0 or inner[position - 1] != "\\"):
            cells.append(inner[start:position].strip())
            start = position + 1
    return [*cells, inner[start:].strip()]


def _unescape(cell: str) -> str:
    """What a reader sees in a cell: the backslash before each pipe goes (cmark-gfm), then
    CommonMark backslash escapes of ASCII punctuation."""
    text, out, position = cell.replace("\\|", "|"), "", 0
    while position < len(text):
        if (text[position] == "\\" and position + 1 < len(text)
                and text[position + 1] in string.punctuation):
            position += 1
        out += text[position]
        position += 1
    return out


HOSTILE = ["a | b", "ends with \\", "\\| already escaped", "two\nlines", "crlf\r\nand\rcr",
           "| leading", "trailing |", "\\\\|", ""]


def test_markdown_cell_keeps_any_text_in_one_cell():
    for text in HOSTILE:
        cell = markdown_cell(text)
        assert "\n" not in cell and "\r" not in cell
        line = f"| {cell} | next |"
        cells = _cells(line)
        assert len(cells) == 2 and cells[1] == "next", text
        assert _unescape(cells[0]) == " ".join(text.replace("\r\n", "\n").replace("\r", "\n")
                                               .split("\n")).strip(), text


def test_tables_from_model_text_keep_their_shape():
    rows = [[text, str(number)] for number, text in enumerate(HOSTILE)]
    lines = markdown_table(["instruction", "n"], rows, numeric_columns={1}).splitlines()
    assert len(lines) == 2 + len(HOSTILE)
    assert all(len(_cells(line)) == 2 for line in lines)
    assert [_cells(line)[1] for line in lines[2:]] == [str(n) for n in range(len(HOSTILE))]


def test_frames_render_with_escaped_cells():
    frame = pd.DataFrame({"status": ["rejected"], "instruction": ["Pick A | B\nthen C"]})
    assert markdown_frame(frame).splitlines() == [
        "| status | instruction |", "|---|---|", "| rejected | Pick A \\| B then C |"]


def test_stats_tables_escape_model_text(two_rounds):
    _, _, stats = two_rounds
    top = pd.DataFrame([("use", "a|b", 2, 2)], columns=["verb", "noun", "count", "verb_count"])
    text = render_markdown(replace(stats, top_verbs=top))
    row = next(line for line in text.splitlines() if line.startswith("| use |"))
    assert _cells(row) == ["use", "2", "a\\|b (2)"]
