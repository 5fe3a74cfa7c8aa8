"""PNG plots and a self-contained HTML report of one round's dataset statistics.

The plots are the paper's diversity figures (verb–noun sunburst, ROUGE-L to the nearest seed,
length histograms) plus the rejection funnel. The HTML file embeds every image as base64 and
uses no external CSS or script, so it can be mailed, archived or opened from asset metadata.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import os
import random
import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sipipeline.reporting.stats import (  # noqa: E402
    CUMULATIVE,
    ROUGE_BIN_EDGES,
    ROUND,
    DatasetStats,
    explode_instances,
    word_count,
)

FILL = "#4c72b0"
LINE = "#dd8452"
SEED = "#55a868"
SAMPLE_SIZE = 10
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def _save(figure: plt.Figure, path: Path) -> str:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return str(path)


def _machine_tasks(pool: pd.DataFrame, round_number: int | None) -> pd.DataFrame:
    machine = pool[pool["origin"].astype(str) == "machine"]
    if round_number is not None:
        machine = machine[machine["round"].astype(int) <= round_number]
    return machine


def _length_samples(tasks: pd.DataFrame) -> dict[str, list[int]]:
    instances = explode_instances(tasks)
    return {
        "instruction": [word_count(text) for text in tasks["instruction"]],
        "non-empty input": [word_count(text) for text in instances["input"] if text.strip()],
        "output": [word_count(text) for text in instances["output"]],
    }


def plot_lengths(pool: pd.DataFrame, round_number: int | None, path: Path) -> str:
    """Word-length histograms of instructions, non-empty inputs and outputs (paper Fig. 3)."""
    machine = _machine_tasks(pool, round_number)
    seeds = pool[pool["origin"].astype(str) == "seed"]
    groups = [(f"rounds ≤ {round_number}" if round_number else "machine", machine,
               FILL, "bar")]
    if round_number:
        groups.append((f"round {round_number}",
                       machine[machine["round"].astype(int) == round_number], LINE, "step"))
    groups.append(("seed tasks", seeds, SEED, "step"))
    samples = [(label, _length_samples(tasks), color, kind)
               for label, tasks, color, kind in groups if len(tasks)]
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, field in zip(axes, ("instruction", "non-empty input", "output"), strict=True):
        values = [v for _, lengths, _, _ in samples for v in lengths[field]]
        upper = max(10, int(np.percentile(values, 99)) + 1) if values else 10
        bins = np.linspace(0, upper, min(40, upper) + 1)
        for label, lengths, color, kind in samples:
            data = np.clip(lengths[field], 0, upper)
            if not len(data):
                continue
            ax.hist(data, bins=bins, density=True, histtype=kind, color=color, linewidth=1.6,
                    alpha=0.75 if kind == "bar" else 1.0,
                    label=f"{label} (n={len(data):,}, mean {np.mean(lengths[field]):.1f})")
        ax.set_title(f"{field} length")
        ax.set_xlabel("words (last bin includes longer)")
        ax.set_ylabel("share")
        ax.legend(fontsize=7)
    return _save(figure, path)


def plot_rouge_to_seed(stats: DatasetStats, path: Path) -> str:
    """Histogram of each machine instruction's ROUGE-L to its most similar seed (paper Fig. 4)."""
    scores = stats.rouge_l_to_seed
    figure, ax = plt.subplots(figsize=(7, 3.8))
    everything = scores["score"].dropna().to_numpy(dtype=float)
    label = f"rounds ≤ {stats.round_number}" if stats.round_number else "machine"
    if len(everything):
        ax.hist(everything, bins=ROUGE_BIN_EDGES, color=FILL, alpha=0.75,
                label=f"{label} (n={len(everything):,}, mean {everything.mean():.2f})")
    if stats.round_number:
        this_round = scores.loc[scores["round"].astype(int) == stats.round_number, "score"]
        this_round = this_round.dropna().to_numpy(dtype=float)
        if len(this_round):
            ax.hist(this_round, bins=ROUGE_BIN_EDGES, histtype="step", color=LINE,
                    linewidth=1.8, label=f"round {stats.round_number} (n={len(this_round):,})")
    if not len(everything):
        ax.text(0.5, 0.5, "no machine-generated instructions yet", ha="center",
                transform=ax.transAxes)
    ax.set_xlim(0, 1)
    ax.set_xlabel("ROUGE-L F-measure to the most similar seed instruction")
    ax.set_ylabel("instructions")
    ax.set_title("Overlap with seed instructions")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return _save(figure, path)


def plot_funnel(stats: DatasetStats, path: Path) -> str:
    """Accepted vs rejected-by-reason candidates, for the round and cumulatively."""
    table = stats.table
    scopes = [(scope, title) for scope, title in ((ROUND, f"round {stats.round_number}"),
                                                  (CUMULATIVE, f"rounds 1–{stats.round_number}"))
              if ((table["scope"] == scope) & (table["metric"] == "instructions_generated")).any()]
    figure, axes = plt.subplots(1, max(1, len(scopes)), figsize=(12, 3.8), squeeze=False)
    for ax, (scope, title) in zip(axes[0], scopes, strict=False):
        rows = table[table["scope"] == scope]
        values = dict(zip(rows["metric"], rows["value"], strict=True))
        labels = ["accepted"] + [m.split("/", 1)[1].replace("_", " ") for m in values
                                 if m.startswith("rejected/") and values[m] > 0]
        counts = [values.get("instructions_accepted", 0)] + [
            values[m] for m in values if m.startswith("rejected/") and values[m] > 0]
        colors = [SEED] + [LINE] * (len(labels) - 1)
        positions = np.arange(len(labels))[::-1]
        ax.barh(positions, counts, color=colors)
        ax.set_yticks(positions, labels, fontsize=8)
        for y, count in zip(positions, counts, strict=True):
            ax.text(count, y, f" {int(count):,}", va="center", fontsize=8)
        generated = values.get("instructions_generated", 0)
        ax.set_title(f"{title}: {int(generated):,} candidates")
        ax.set_xlabel("instructions")
        ax.margins(x=0.15)
    if not scopes:
        axes[0][0].text(0.5, 0.5, "no generation funnel", ha="center")
        axes[0][0].set_axis_off()
    return _save(figure, path)


def plot_verb_nouns(top_verbs: pd.DataFrame, path: Path, title: str) -> str:
    """Two-ring sunburst: top root verbs inside, their top direct-object nouns outside."""
    figure, ax = plt.subplots(figsize=(8.5, 8.5))
    verbs_order = list(dict.fromkeys(top_verbs["verb"]))
    verb_totals = [int(top_verbs.loc[top_verbs["verb"] == v, "verb_count"].iloc[0])
                   for v in verbs_order]
    palette = plt.get_cmap("tab20")
    inner_colors = [palette(i % 20) for i in range(len(verbs_order))]
    outer_sizes, outer_labels, outer_colors = [], [], []
    for i, verb in enumerate(verbs_order):
        rows = top_verbs[top_verbs["verb"] == verb]
        for noun, count in zip(rows["noun"], rows["count"], strict=True):
            outer_sizes.append(int(count))
            outer_labels.append(str(noun))
            outer_colors.append((*inner_colors[i][:3], 0.65))
        rest = verb_totals[i] - int(rows["count"].sum())
        if rest > 0:
            outer_sizes.append(rest)
            outer_labels.append("")  # the verb's other nouns
            outer_colors.append((0.92, 0.92, 0.92, 1.0))
    total = sum(verb_totals)
    inner_labels = [v if n / total > 0.02 else "" for v, n in zip(verbs_order, verb_totals,
                                                                    strict=True)]
    outer_labels = [label if size / total > 0.012 else ""
                    for label, size in zip(outer_labels, outer_sizes, strict=True)]
    ax.pie(verb_totals, radius=0.62, labels=inner_labels, labeldistance=0.55,
           colors=inner_colors, startangle=90, counterclock=False,
           wedgeprops={"width": 0.42, "edgecolor": "white"}, textprops={"fontsize": 8})
    ax.pie(outer_sizes, radius=1.0, labels=outer_labels, labeldistance=0.8,
           colors=outer_colors, startangle=90, counterclock=False, rotatelabels=True,
           wedgeprops={"width": 0.38, "edgecolor": "white"}, textprops={"fontsize": 7})
    ax.set_title(title)
    ax.set_aspect("equal")
    return _save(figure, path)


# ---------------------------------------------------------------------------------------------
# HTML


def _markdown_to_html(markdown: str) -> str:
    """The subset of Markdown that `stats.render_markdown` writes: headings, tables, text."""
    out: list[str] = []
    table: list[list[str]] = []

    def flush_table() -> None:
        if not table:
            return
        header, aligns, *body = table
        align = ["right" if cell.strip().endswith(":") else "left" for cell in aligns]
        out.append("<table><thead><tr>" + "".join(
            f'<th style="text-align:{a}">{html.escape(c)}</th>'
            for c, a in zip(header, align, strict=False)) + "</tr></thead><tbody>")
        for row in body:
            out.append("<tr>" + "".join(f'<td style="text-align:{a}">{html.escape(c)}</td>'
                                        for c, a in zip(row, align, strict=False)) + "</tr>")
        out.append("</tbody></table>")
        table.clear()

    for line in markdown.splitlines():
        stripped = line.strip()
        if stripped.startswith("|"):
            inner = stripped[1:-1] if stripped.endswith("|") else stripped[1:]
            cells = [c.strip().replace("\\|", "|") for c in _CELL_SPLIT.split(inner)]
            table.append(cells)
            continue
        flush_table()
        if stripped.startswith("#"):
            level = min(6, len(stripped) - len(stripped.lstrip("#")) + 1)
            out.append(f"<h{level}>{html.escape(stripped.lstrip('#').strip())}</h{level}>")
        elif stripped:
            text = stripped.strip("_") if stripped.startswith("_") else stripped
            out.append(f"<p>{html.escape(text)}</p>")
    flush_table()
    return "\n".join(out)


def _image_tag(path: str, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def _sample_rows(pool: pd.DataFrame, round_number: int | None, size: int) -> list[dict]:
    machine = _machine_tasks(pool, round_number)
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


def _sample_html(rows: Sequence[dict]) -> str:
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


def render_round_report(stats: DatasetStats, pool: pd.DataFrame, round_number: int,
                        out_dir: str | os.PathLike) -> dict[str, str]:
    """Write the round's PNG plots and `report.html` into out_dir; return {name: path}.

    Keys: "html", "lengths", "rouge_l_to_seed", "funnel" and, when verb–noun pairs exist,
    "verb_noun". Paths are absolute strings.
    """
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    files["lengths"] = plot_lengths(pool, round_number, out / "lengths.png")
    files["rouge_l_to_seed"] = plot_rouge_to_seed(stats, out / "rouge_l_to_seed.png")
    if ((stats.table["metric"] == "instructions_generated")
            & stats.table["scope"].isin([ROUND, CUMULATIVE])).any():
        files["funnel"] = plot_funnel(stats, out / "funnel.png")
    if len(stats.top_verbs):
        scope = f"rounds 1–{round_number}" if round_number else "dataset"
        files["verb_noun"] = plot_verb_nouns(
            stats.top_verbs, out / "verb_noun.png",
            f"Top {stats.top_verbs['verb'].nunique()} root verbs and their top direct-object "
            f"nouns ({scope})")

    figures = [(name, alt) for name, alt in (
        ("verb_noun", "verb–noun sunburst"), ("rouge_l_to_seed", "ROUGE-L to nearest seed"),
        ("lengths", "length histograms"), ("funnel", "instruction funnel")) if name in files]
    generated_at = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = f"sipipeline dataset report — round {round_number}"
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='note'>Generated {generated_at}. Machine-generated tasks of rounds "
        f"1–{round_number} (seeds shown for comparison). Words are whitespace-separated; "
        "paper figures are GPT-3 davinci's (Wang et al., 2023).</p>",
        _markdown_to_html(stats.markdown),
        "<h2>Figures</h2>",
        *[_image_tag(files[name], alt) for name, alt in figures],
        f"<h2>Sample of round {round_number}'s tasks</h2>",
        _sample_html(_sample_rows(pool, round_number, SAMPLE_SIZE)),
    ]
    page = ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
    html_path = out / "report.html"
    html_path.write_text(page, encoding="utf-8")
    files["html"] = str(html_path)
    return files
