"""The Markdown the UI shows: short summary, the whole funnel, plots as embedded images."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from sipipeline.reporting.render import render_plots
from sipipeline.reporting.tables import format_for_people, significant
from sipipeline.reporting.ui_markdown import stats_markdown

DATA_URI = re.compile(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)")


def test_numbers_are_rounded_to_three_significant_digits_for_people():
    assert significant(15.912345678) == "15.9"
    assert significant(0.123456789) == "0.123"
    assert significant(1234.5) == "1,230"
    assert format_for_people("instruction_words_mean", 15.912345678901) == "15.9"
    assert format_for_people("classification_share", 0.2208790) == "22.1%"
    assert format_for_people("tasks", 52445.0) == "52,445"  # counts stay exact


def test_stats_markdown_embeds_every_plot_and_a_short_summary(two_rounds, tmp_path):
    pool, _, stats = two_rounds
    files = render_plots(stats, pool, 2, tmp_path)
    figures = {name: Path(path).read_bytes() for name, path in files.items()}
    entries = stats_markdown(stats, figures)
    assert {f"plots/{name}" for name in figures} <= set(entries)
    assert {"plots/funnel", "plots/lengths", "plots/rouge_l_to_seed"} <= set(entries)
    for name, png in figures.items():
        (encoded,) = DATA_URI.findall(entries[f"plots/{name}"])
        assert base64.b64decode(encoded) == png
    summary = entries["summary"]
    assert summary.startswith("| metric | round 2 | rounds 1–2 | seed tasks | paper (GPT-3) |")
    assert "| instruction words, mean |" in summary
    assert not re.search(r"\d\.\d{4,}", summary)  # no long floats
    assert "added to the pool" in entries["funnel"]
    assert "file://" not in "".join(entries.values())
