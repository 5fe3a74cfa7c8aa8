"""The statistics as display tables: what a reader sees, built once for every renderer.

`stats_sections(stats)` turns a `DatasetStats` into titled sections, each a `ReportTable` of
formatted cells (counts with thousands separators, shares as percentages, averages with two
decimals) plus notes. The Markdown renderer (`markdown_render`) and the HTML renderer
(`html_render`) both draw these, so neither parses the other's output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sipipeline.reporting.stats import (
    CUMULATIVE,
    FUNNEL_COUNTS,
    PAPER_FIGURES,
    ROUND,
    SEEDS,
    DatasetStats,
    metric_kind,
)

SUMMARY_METRICS = (
    ("tasks", "instructions (tasks kept)"),
    ("classification_tasks", "classification tasks"),
    ("classification_share", "classification share"),
    ("instances", "instances"),
    ("instances_per_instruction", "instances per instruction"),
    ("empty_input_share", "instances with empty input"),
    ("instruction_words_mean", "instruction words, mean"),
    ("instruction_words_median", "instruction words, median"),
    ("input_words_mean", "non-empty input words, mean"),
    ("input_words_median", "non-empty input words, median"),
    ("output_words_mean", "output words, mean"),
    ("output_words_median", "output words, median"),
    ("rouge_l_to_seed_mean", "ROUGE-L to nearest seed, mean"),
    ("rouge_l_to_seed_median", "ROUGE-L to nearest seed, median"),
    ("instructions_with_verb_noun", "instructions with a verb–noun pair"),
    ("distinct_verbs", "distinct root verbs"),
    ("distinct_verb_nouns", "distinct verb–noun pairs"),
)
SHARE_METRICS = {"classification_share", "empty_input_share", "acceptance_rate",
                 "verb_noun_share"}


@dataclass(frozen=True)
class ReportTable:
    """Rows of display cells under column titles; numeric columns are right-aligned."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric_columns: frozenset[int] = frozenset()

    @classmethod
    def of(cls, columns: Sequence[str], rows: Iterable[Sequence[object]],
           numeric_columns: Iterable[int] = ()) -> ReportTable:
        """A table from any sequences; cells become strings."""
        return cls(tuple(str(c) for c in columns),
                   tuple(tuple(str(cell) for cell in row) for row in rows),
                   frozenset(numeric_columns))


@dataclass(frozen=True)
class ReportSection:
    """A heading, its table (or `empty_text` when there is none) and notes under it."""

    title: str
    level: int  # 2 = a section of the statistics, 3 = a subsection
    table: ReportTable | None
    empty_text: str = ""
    notes: tuple[str, ...] = ()


def format_value(metric: str, value: float | None) -> str:
    """Counts with thousands separators, shares as percentages, averages with 2 decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if metric in SHARE_METRICS:
        return f"{100 * value:.1f}%"
    if metric_kind(metric) is int:
        return f"{int(round(value)):,}"
    return f"{value:.2f}"


def significant(value: float, digits: int = 3) -> str:
    """`value` rounded to `digits` significant digits, without exponent (1,230 · 15.9 · 0.123)."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    places = digits - 1 - math.floor(math.log10(abs(value)))
    rounded = round(value, places)
    return f"{rounded:.{places}f}" if places > 0 else f"{int(rounded):,}"


def format_for_people(metric: str, value: float | None) -> str:
    """Counts exact with thousands separators; shares and averages to 3 significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if metric in SHARE_METRICS:
        return f"{significant(100 * value)}%"
    if metric_kind(metric) is int:
        return f"{int(round(value)):,}"
    return significant(value)


def scope_labels(stats: DatasetStats) -> list[tuple[str, str]]:
    """(scope, column title) of the scopes present, in display order."""
    present = set(stats.table["scope"])
    n = stats.round_number
    titles = {ROUND: f"round {n}", CUMULATIVE: f"rounds 1–{n}" if n else "cumulative",
              SEEDS: "seed tasks"}
    return [(scope, titles[scope]) for scope in (ROUND, CUMULATIVE, SEEDS) if scope in present]


def summary_section(stats: DatasetStats,
                    formatter: Callable[[str, float | None], str] = format_value
                    ) -> ReportSection:
    """The paper's Table 1 figures per scope, with GPT-3's next to them."""
    scopes = scope_labels(stats)
    known = set(stats.table["metric"])
    rows = []
    for metric, label in SUMMARY_METRICS:
        if metric not in known:
            continue
        paper = PAPER_FIGURES.get(metric)
        rows.append([label, *[formatter(metric, stats.value(scope, metric))
                              for scope, _ in scopes],
                     formatter(metric, paper) if paper is not None else ""])
    columns = ["metric", *[title for _, title in scopes], "paper (GPT-3)"]
    title = (f"Dataset statistics, round {stats.round_number}" if stats.round_number
             else "Dataset statistics")
    return ReportSection(title, 2, ReportTable.of(columns, rows, range(1, len(columns))))


def funnel_section(stats: DatasetStats) -> ReportSection | None:
    """The whole funnel, candidates to "added to the pool" (None without a funnel).

    Stats recorded before the whole funnel existed show their candidate counts instead.
    """
    scopes = [(scope, t) for scope, t in scope_labels(stats) if scope in (ROUND, CUMULATIVE)]
    if not scopes or not any(stats.funnel(scope) for scope, _ in scopes):
        return _candidate_funnel_section(stats, scopes)
    by_scope = {scope: {stage.key: stage for stage in stats.funnel(scope)} for scope, _ in scopes}
    order = [stage.key for stage in stats.funnel(scopes[0][0])]
    rows = []
    for key in order:
        stages = [by_scope[scope].get(key) for scope, _ in scopes]
        if not any(stage is not None and stage.shown for stage in stages):
            continue
        label = next(stage.label for stage in stages if stage is not None)
        cells = []
        for stage in stages:
            cells += (["–", ""] if stage is None else
                      [f"{stage.count:,}", f"−{stage.removed:,}" if stage.removed else ""])
        rows.append([label, *cells])
    columns = ["stage", *[c for _, title in scopes for c in (title, "removed")]]
    return ReportSection("Funnel: candidates to the pool", 3,
                         ReportTable.of(columns, rows, range(1, len(columns))),
                         notes=_funnel_notes(stats))


def _funnel_notes(stats: DatasetStats) -> tuple[str, ...]:
    rounds = stats.value(CUMULATIVE, "funnel_rounds")
    if stats.round_number and not math.isnan(rounds) and rounds < stats.round_number:
        return (f"Cumulative funnel covers {int(rounds)} of {stats.round_number} "
                "rounds (earlier rounds' statistics were not available).",)
    return ()


def _candidate_funnel_section(stats: DatasetStats,
                              scopes: list[tuple[str, str]]) -> ReportSection | None:
    """Candidates generated, accepted and rejected per reason (None without a funnel)."""
    known = set(stats.table["metric"])
    if not scopes or "instructions_generated" not in known:
        return None
    rows = []
    reasons = sorted(m for m in known if m.startswith("rejected/"))
    for metric in [*FUNNEL_COUNTS, "acceptance_rate", *reasons]:
        values = [stats.value(scope, metric) for scope, _ in scopes]
        if metric.startswith("rejected/") and all(v == 0 for v in values):
            continue
        label = ("rejected: " + metric.split("/", 1)[1].replace("_", " ")
                 if metric.startswith("rejected/") else metric.replace("_", " "))
        rows.append([label, *[format_value(metric, v) for v in values]])
    columns = ["stage", *[t for _, t in scopes]]
    return ReportSection("Instruction funnel", 3,
                         ReportTable.of(columns, rows, range(1, len(columns))),
                         notes=_funnel_notes(stats))


def verb_noun_section(stats: DatasetStats) -> ReportSection:
    """Top root verbs with their instruction counts and top direct-object nouns."""
    table = None
    if len(stats.top_verbs):
        rows = []
        for verb, group in stats.top_verbs.groupby("verb", sort=False):
            nouns = ", ".join(f"{noun} ({count})" for noun, count in
                              zip(group["noun"], group["count"], strict=True))
            rows.append([verb, f"{int(group['verb_count'].iloc[0]):,}", nouns])
        table = ReportTable.of(["verb", "instructions", "top nouns"], rows, numeric_columns=[1])
    return ReportSection("Top root verbs and their direct-object nouns", 3, table,
                         empty_text="No verb–noun pairs.",
                         notes=(f"Verb–noun parsing: {stats.verb_noun_status}",))


def stats_sections(stats: DatasetStats) -> list[ReportSection]:
    """Summary, funnel (when the stats have one) and top verbs, in display order."""
    funnel = funnel_section(stats)
    return [summary_section(stats), *([funnel] if funnel else []), verb_noun_section(stats)]
