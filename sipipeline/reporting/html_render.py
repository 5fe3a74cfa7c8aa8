"""HTML rendering of the report: the statistics' sections, a task sample and the page.

Tables are drawn from `tables.ReportTable` cells, escaped once here; nothing is parsed back
from Markdown. The page has no external CSS, script or image (figures come in as data URIs).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

from sipipeline.reporting.stats import DatasetStats
from sipipeline.reporting.tables import ReportSection, ReportTable, stats_sections

STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2em auto;
       max-width: 1150px; color: #222; line-height: 1.4; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.6em 0 1.4em; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; vertical-align: top; }
th { background: #f3f4f6; }
table.samples td { max-width: 360px; white-space: pre-wrap; word-break: break-word; }
figure { margin: 1em 0; } img { max-width: 100%; border: 1px solid #eee; }
.note { color: #555; font-size: 0.9em; }
"""
# The page's own headings are h1 (title) and h2 (figures, sample); statistics sit below them.
_HEADING_OFFSET = 1


def html_table(table: ReportTable) -> str:
    """A `ReportTable` as an HTML table, numeric columns right-aligned."""
    align = ["right" if i in table.numeric_columns else "left" for i in range(len(table.columns))]
    lines = ["<table><thead><tr>" + "".join(
        f'<th style="text-align:{a}">{html.escape(c)}</th>'
        for c, a in zip(table.columns, align, strict=True)) + "</tr></thead><tbody>"]
    for row in table.rows:
        lines.append("<tr>" + "".join(f'<td style="text-align:{a}">{html.escape(c)}</td>'
                                      for c, a in zip(row, align, strict=True)) + "</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def render_sections_html(sections: Sequence[ReportSection]) -> str:
    """Headings, tables (or their empty text) and notes as paragraphs."""
    out: list[str] = []
    for section in sections:
        level = min(6, section.level + _HEADING_OFFSET)
        out.append(f"<h{level}>{html.escape(section.title)}</h{level}>")
        out.append(html_table(section.table) if section.table is not None
                   else f"<p>{html.escape(section.empty_text)}</p>")
        out += [f"<p>{html.escape(note)}</p>" for note in section.notes]
    return "\n".join(out)


def render_stats_html(stats: DatasetStats) -> str:
    """The statistics' summary, funnel and top-verb tables as HTML."""
    return render_sections_html(stats_sections(stats))


def image_html(png: bytes, alt: str) -> str:
    """A figure with the PNG embedded as a data URI."""
    data = base64.b64encode(png).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def sample_html(rows: Sequence[dict]) -> str:
    """Sampled tasks (task_id, classification, instances, instruction, first input/output)."""
    if not rows:
        return "<p>No tasks were added in this round.</p>"
    head = ("<table class='samples'><thead><tr><th>task</th><th>instruction</th><th>input</th>"
            "<th>output</th></tr></thead><tbody>")
    body = "".join(
        "<tr><td>{}<br><small>{}{} instance(s)</small></td><td>{}</td><td>{}</td><td>{}</td>"
        "</tr>".format(html.escape(str(r["task_id"])),
                       "classification, " if r["classification"] else "", r["instances"],
                       html.escape(r["instruction"]), html.escape(r["input"]) or "<i>(empty)</i>",
                       html.escape(r["output"]))
        for r in rows)
    return head + body + "</tbody></table>"


def html_page(title: str, body: Sequence[str]) -> str:
    """A complete, self-contained HTML document."""
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
