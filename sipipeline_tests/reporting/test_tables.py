"""Display tables built from the statistics: the one structure both renderers draw."""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd

from sipipeline.reporting.stats import compute_dataset_stats
from sipipeline.reporting.tables import (
    ReportTable,
    format_value,
    funnel_section,
    stats_sections,
    summary_section,
    verb_noun_section,
)
from sipipeline_tests.support.stats_cases import generated_candidates, synthetic_pool


def test_values_are_formatted_by_kind():
    assert format_value("tasks", 52445.0) == "52,445"
    assert format_value("classification_share", 0.25) == "25.0%"
    assert format_value("instruction_words_mean", 15.912) == "15.91"
    assert format_value("tasks", math.nan) == "–"
    assert format_value("tasks", None) == "–"


def test_summary_has_one_column_per_scope_and_the_paper(two_rounds):
    _, _, stats = two_rounds
    table = summary_section(stats).table
    assert table.columns == ("metric", "round 2", "rounds 1–2", "seed tasks", "paper (GPT-3)")
    rows = {row[0]: row[1:] for row in table.rows}
    assert rows["instructions (tasks kept)"] == ("3", "5", "4", "52,445")
    assert rows["instances with empty input"][:2] == ("40.0%", "37.5%")
    assert table.numeric_columns == frozenset({1, 2, 3, 4})
    assert summary_section(stats).title == "Dataset statistics, round 2"


def as_frame(table) -> pd.DataFrame:
    """A report table's cells, for assertions (column names may repeat)."""
    return pd.DataFrame([list(row) for row in table.rows], columns=list(table.columns))


def test_funnel_runs_from_candidates_to_the_pool_with_what_each_stage_removed(two_rounds):
    _, _, stats = two_rounds
    section = funnel_section(stats)
    frame = as_frame(section.table).set_index("stage")
    assert list(frame.columns) == ["round 2", "removed", "rounds 1–2", "removed"]
    rows = {label: list(cells) for label, cells in zip(frame.index, frame.values, strict=True)}
    assert rows["candidates parsed from the responses"] == ["6", "", "10", ""]
    assert rows["minus too short (≤ 3 words)"] == ["6", "", "8", "−2"]
    assert rows["minus a blacklisted word"] == ["5", "−1", "7", "−1"]
    assert rows["novel (ROUGE-L to the pool below the threshold)"] == ["3", "−2", "5", "−2"]
    assert rows["added to the pool"] == ["3", "", "5", ""]
    assert "minus too long (> 150 words)" not in rows  # removes nothing in any scope
    assert list(rows)[-1] == "added to the pool"
    assert section.notes == ()


def test_funnel_notes_missing_earlier_rounds_and_is_absent_without_candidates():
    stats = compute_dataset_stats(synthetic_pool(), generated_candidates(2, ["c"], []), 2, None)
    assert "covers 1 of 2 rounds" in funnel_section(stats).notes[0]
    full = compute_dataset_stats(synthetic_pool(), None, 2)
    seeds_only = replace(full, table=full.table[full.table["scope"] == "seeds"])
    assert funnel_section(seeds_only) is None
    assert [s.title for s in stats_sections(seeds_only)] == [
        "Dataset statistics, round 2", "Top root verbs and their direct-object nouns"]


def test_verb_table_groups_nouns_under_their_verb(two_rounds):
    _, _, stats = two_rounds
    top = pd.DataFrame(
        [("write", "poem", 3, 5), ("write", "story", 2, 5), ("give", "list", 1, 1)],
        columns=["verb", "noun", "count", "verb_count"])
    section = verb_noun_section(replace(stats, top_verbs=top))
    assert section.table.rows == (("write", "5", "poem (3), story (2)"),
                                  ("give", "1", "list (1)"))
    assert section.notes[0].startswith("Verb–noun parsing: ")
    empty = verb_noun_section(replace(stats, top_verbs=top.iloc[0:0]))
    assert empty.table is None and empty.empty_text == "No verb–noun pairs."


def test_tables_keep_cells_as_given():
    table = ReportTable.of(["a", "b"], [[1, "x | y\nz"]], numeric_columns=[0])
    assert table.rows == (("1", "x | y\nz"),)
    assert as_frame(table).to_dict("records") == [{"a": "1", "b": "x | y\nz"}]
