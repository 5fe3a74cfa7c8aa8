"""PNG plots of a round's dataset statistics: the paper's diversity figures and the funnel.

Verb–noun sunburst (paper Fig. 2), ROUGE-L to the nearest seed (Fig. 4), length histograms
(Fig. 3) and the rejection funnel. Each plot function writes its PNG all or nothing and
returns the path.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sipipeline.method.vocabulary import Origin  # noqa: E402
from sipipeline.reporting.atomic import write_with  # noqa: E402
from sipipeline.reporting.stats import (  # noqa: E402
    CUMULATIVE,
    ROUGE_BIN_EDGES,
    ROUND,
    DatasetStats,
    instance_lengths,
    instruction_word_counts,
    machine_tasks,
)

FILL = "#4c72b0"
LINE = "#dd8452"
SEED = "#55a868"


def _save(figure: plt.Figure, path: Path) -> str:
    """Lay out, write as PNG (atomically) and close the figure."""
    try:
        figure.tight_layout()
        write_with(path, lambda partial: figure.savefig(partial, dpi=110, format="png"))
    finally:
        plt.close(figure)
    return str(path)


def _length_samples(tasks: pd.DataFrame) -> dict[str, list[int]]:
    inputs, outputs = instance_lengths(tasks)
    return {"instruction": instruction_word_counts(tasks),
            "non-empty input": inputs[inputs > 0].tolist(),
            "output": outputs.tolist()}


def plot_lengths(pool: pd.DataFrame, round_number: int | None, path: Path) -> str:
    """Word-length histograms of instructions, non-empty inputs and outputs (paper Fig. 3)."""
    machine = machine_tasks(pool, round_number)
    seeds = pool[pool["origin"].astype(str) == Origin.SEED]
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


def _funnel_bars(stats: DatasetStats) -> list[tuple[str, str]]:
    """(scope, title) of the scopes whose stats carry a funnel."""
    scopes = ((ROUND, f"round {stats.round_number}"),
              (CUMULATIVE, f"rounds 1–{stats.round_number}"))
    return [(scope, title) for scope, title in scopes if stats.funnel(scope)]


def plot_funnel(stats: DatasetStats, path: Path) -> str:
    """The whole funnel, candidates to "added to the pool", for the round and cumulatively.

    One bar per stage that removed something (and per milestone), its length what remains.
    """
    scopes = _funnel_bars(stats)
    shown = {stage.key for scope, _ in scopes for stage in stats.funnel(scope) if stage.shown}
    figure, axes = plt.subplots(1, max(1, len(scopes)), figsize=(13, 4.6), squeeze=False)
    for ax, (scope, title) in zip(axes[0], scopes, strict=False):
        bars = [(stage.label, stage.count, stage.removed)
                for stage in stats.funnel(scope) if stage.key in shown]
        positions = np.arange(len(bars))[::-1]
        counts = [count for _, count, _ in bars]
        colors = [SEED if index == len(bars) - 1 else FILL for index in range(len(bars))]
        ax.barh(positions, counts, color=colors)
        ax.set_yticks(positions, [label for label, _, _ in bars], fontsize=7)
        for y, (_, count, removed) in zip(positions, bars, strict=True):
            note = f" {int(count):,}" + (f"  (−{int(removed):,})" if removed else "")
            ax.text(count, y, note, va="center", fontsize=7)
        ax.set_title(f"{title}: {int(counts[0]) if counts else 0:,} candidates → "
                     f"{int(counts[-1]) if counts else 0:,} added", fontsize=9)
        ax.set_xlabel("instructions remaining")
        ax.margins(x=0.25)
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
