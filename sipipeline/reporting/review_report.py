"""A self-contained HTML page of one round's quality review: the table beside the paper's,
the agreement with the judge when people reviewed too, and the verdicts themselves."""

from __future__ import annotations

import html
import math
from pathlib import Path

import pandas as pd

from sipipeline.method.quality import percent
from sipipeline.method.review import QUESTIONS
from sipipeline.reporting.atomic import write_text
from sipipeline.reporting.markdown_render import markdown_table

STYLE = ("body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
         "padding:.3em .6em;vertical-align:top}th{background:#f3f3f3}td.n{text-align:right}")
SHOWN_VERDICTS = 200


def _interval(low: float, high: float) -> str:
    return "–" if math.isnan(low) else f"{percent(low)}–{percent(high)}"


def _kappa(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"


def quality_markdown(table: pd.DataFrame) -> str:
    """The quality table as Markdown: share with its 95% interval beside the paper's share."""
    rows = [(r.question, percent(r.share), _interval(r.ci_low, r.ci_high), r.answered,
             r.unparseable, percent(r.paper)) for r in table.itertuples()]
    return markdown_table(["question", "share", "95% CI", "answered", "unparseable", "paper"],
                          rows, numeric_columns=(1, 2, 3, 4, 5))


def agreement_markdown(agreement: pd.DataFrame) -> str:
    """Per question: pairs both answered, raw agreement and Cohen's kappa."""
    rows = [(r.measure, r.pairs, percent(r.agreement), _kappa(r.kappa))
            for r in agreement.itertuples()]
    return markdown_table(["question", "pairs", "agreement", "Cohen's kappa"], rows,
                          numeric_columns=(1, 2, 3))


def _cell(value: object, numeric: bool = False) -> str:
    css = ' class="n"' if numeric else ""
    return f"<td{css}>{html.escape(str(value))}</td>"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return f"<table><tr>{head}</tr>" + "".join(f"<tr>{''.join(r)}</tr>" for r in rows) \
        + "</table>"


def quality_table_html(table: pd.DataFrame) -> str:
    rows = []
    for row in table.itertuples():
        rows.append([_cell(row.question), _cell(percent(row.share), True),
                     _cell(_interval(row.ci_low, row.ci_high), True), _cell(row.answered, True),
                     _cell(row.unparseable, True), _cell(percent(row.paper), True)])
    return _table(["question", "share", "95% CI", "answered", "unparseable", "paper"], rows)


def agreement_html(agreement: pd.DataFrame) -> str:
    rows = [[_cell(r.measure), _cell(r.pairs, True), _cell(percent(r.agreement), True),
             _cell(_kappa(r.kappa), True)]
            for r in agreement.itertuples()]
    return _table(["question", "pairs", "agreement", "Cohen's kappa"], rows)


def _answer(value: object) -> str:
    return "?" if pd.isna(value) else ("yes" if value else "no")


def verdicts_html(verdicts: pd.DataFrame, limit: int = SHOWN_VERDICTS) -> str:
    rows = []
    for record in verdicts.head(limit).to_dict("records"):
        rows.append([_cell(record["instruction"]), _cell(record["input"] or "(no input)"),
                     _cell(record["output"]),
                     *[_cell(_answer(record[str(q)])) for q in QUESTIONS],
                     _cell(record.get("reason") or ""),
                     _cell("" if pd.isna(record.get("parse_error")) else record["parse_error"])])
    return _table(["instruction", "input", "output", *[str(q) for q in QUESTIONS], "reason",
                   "unparseable because"], rows)


def render_review_report(title: str, intro: str, table: pd.DataFrame, verdicts: pd.DataFrame,
                         path: Path, agreement: pd.DataFrame | None = None) -> Path:
    """Write the page to `path` (every value HTML-escaped) and return it."""
    parts = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(intro)}</p>",
             "<h2>Quality (the paper's Table 2)</h2>", quality_table_html(table)]
    if agreement is not None:
        parts += ["<h2>Agreement between people and the judge</h2>", agreement_html(agreement)]
    shown = min(len(verdicts), SHOWN_VERDICTS)
    parts += [f"<h2>Verdicts ({shown} of {len(verdicts)})</h2>", verdicts_html(verdicts)]
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text(path, "<!DOCTYPE html><html><head><meta charset='utf-8'>"
                      f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
                      "<body>\n" + "\n".join(parts) + "\n</body></html>\n")
