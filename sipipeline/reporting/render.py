"""A round's report: its PNG plots and one self-contained `report.html`, written atomically.

The HTML embeds every image as base64 and uses no external CSS or script, so it can be mailed,
archived or opened from asset metadata. Every file is replaced whole (see `atomic`), so a full
disk leaves the previous report, never a truncated one.
"""

from __future__ import annotations

import datetime as _dt
import html
import os
import random
from pathlib import Path

import pandas as pd

from sipipeline.reporting import plots
from sipipeline.reporting.atomic import write_text
from sipipeline.reporting.html_render import html_page, image_html, render_stats_html, sample_html
from sipipeline.reporting.stats import CUMULATIVE, ROUND, DatasetStats, machine_tasks

SAMPLE_SIZE = 10
FIGURES = (("verb_noun", "verb–noun sunburst"), ("rouge_l_to_seed", "ROUGE-L to nearest seed"),
           ("lengths", "length histograms"), ("funnel", "instruction funnel"))


def sample_rows(pool: pd.DataFrame, round_number: int | None, size: int) -> list[dict]:
    """A seeded sample of the round's tasks with their first instance (same on every run)."""
    machine = machine_tasks(pool, round_number)
    if round_number:
        machine = machine[machine["round"].astype(int) == round_number]
    indices = sorted(random.Random(round_number or 0).sample(range(len(machine)),
                                                             min(size, len(machine))))
    rows = []
    for index in indices:
        task = machine.iloc[index]
        instances = list(task["instances"]) if task["instances"] is not None else []
        first = instances[0] if instances else {"input": "", "output": ""}
        rows.append({"task_id": task["task_id"], "instruction": task["instruction"],
                     "classification": bool(task["is_classification"]),
                     "instances": len(instances), "input": first.get("input") or "",
                     "output": first.get("output") or ""})
    return rows


def render_plots(stats: DatasetStats, pool: pd.DataFrame, round_number: int,
                 out: Path) -> dict[str, str]:
    """The round's PNGs in `out`: {name: path}."""
    files: dict[str, str] = {}
    files["lengths"] = plots.plot_lengths(pool, round_number, out / "lengths.png")
    files["rouge_l_to_seed"] = plots.plot_rouge_to_seed(stats, out / "rouge_l_to_seed.png")
    if stats.funnel(ROUND) or stats.funnel(CUMULATIVE):
        files["funnel"] = plots.plot_funnel(stats, out / "funnel.png")
    if len(stats.top_verbs):
        scope = f"rounds 1–{round_number}" if round_number else "dataset"
        files["verb_noun"] = plots.plot_verb_nouns(
            stats.top_verbs, out / "verb_noun.png",
            f"Top {stats.top_verbs['verb'].nunique()} root verbs and their top direct-object "
            f"nouns ({scope})")
    return files


def report_html(stats: DatasetStats, pool: pd.DataFrame, round_number: int,
                figures: dict[str, bytes]) -> str:
    """The whole page: statistics, the figures given as PNG bytes, a sample of the tasks."""
    generated_at = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = f"sipipeline dataset report — round {round_number}"
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='note'>Generated {generated_at}. Machine-generated tasks of rounds "
        f"1–{round_number} (seeds shown for comparison). Words are whitespace-separated; "
        "paper figures are GPT-3 davinci's (Wang et al., 2023).</p>",
        render_stats_html(stats),
        "<h2>Figures</h2>",
        *[image_html(figures[name], alt) for name, alt in FIGURES if name in figures],
        f"<h2>Sample of round {round_number}'s tasks</h2>",
        sample_html(sample_rows(pool, round_number, SAMPLE_SIZE)),
    ]
    return html_page(title, body)


def render_round_report(stats: DatasetStats, pool: pd.DataFrame, round_number: int,
                        out_dir: str | os.PathLike) -> dict[str, str]:
    """Write the round's PNG plots and `report.html` into out_dir; return {name: path}.

    Keys: "html", "lengths", "rouge_l_to_seed", "funnel" and, when verb–noun pairs exist,
    "verb_noun". Paths are absolute strings.
    """
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    files = render_plots(stats, pool, round_number, out)
    figures = {name: Path(path).read_bytes() for name, path in files.items()}
    page = report_html(stats, pool, round_number, figures)
    files["html"] = str(write_text(out / "report.html", page))
    return files
