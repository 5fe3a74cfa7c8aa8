"""HTML rendering draws the structured tables directly (no Markdown parsed back)."""

from __future__ import annotations

import ast
from pathlib import Path

import sipipeline.reporting.html_render as html_render
from sipipeline.reporting.html_render import html_table, render_sections_html, render_stats_html
from sipipeline.reporting.tables import ReportSection, ReportTable, stats_sections


def test_cells_are_escaped_once_and_keep_markdown_characters():
    table = ReportTable.of(["text", "n"], [["a | b \\| c\n# not a heading <b>", "7"]], [1])
    rendered = html_table(table)
    assert ('<td style="text-align:left">a | b \\| c\n# not a heading &lt;b&gt;</td>'
            in rendered)
    assert '<td style="text-align:right">7</td>' in rendered
    assert rendered.count("<tr>") == 2  # header row and one body row


def test_sections_map_to_headings_below_the_page_title():
    sections = [ReportSection("Numbers", 2, None, empty_text="No rows.", notes=("x < y",))]
    assert render_sections_html(sections) == "<h3>Numbers</h3>\n<p>No rows.</p>\n<p>x &lt; y</p>"


def test_stats_html_has_every_table_cell(two_rounds):
    _, _, stats = two_rounds
    page = render_stats_html(stats)
    for section in stats_sections(stats):
        assert f">{section.title}</h" in page
        for row in section.table.rows if section.table else ():
            for cell in row:
                assert f">{cell}</td>" in page


def test_html_renderer_does_not_read_markdown():
    tree = ast.parse(Path(html_render.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
    assert not any("markdown" in name for name in imported)
