"""The statistics as Markdown for the Dagster UI: a short summary, the funnel, embedded plots.

Dagster shows Markdown metadata in the asset catalog, and its documented way to put a plot
there is an image embedded as a base64 data URI; a `file://` link does not open from the UI's
`http://` page. The raw numbers stay as numeric metadata beside these (for plots across rounds).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from sipipeline.reporting.markdown_render import render_sections, render_table
from sipipeline.reporting.stats import DatasetStats
from sipipeline.reporting.tables import format_for_people, funnel_section, summary_section

#: Plot name -> caption, in the order the UI lists them.
PLOT_CAPTIONS = {
    "funnel": "Funnel: candidates to the pool",
    "lengths": "Lengths of instructions, inputs and outputs (words)",
    "rouge_l_to_seed": "ROUGE-L to the nearest seed instruction",
    "verb_noun": "Root verbs and their direct-object nouns",
}


def image_markdown(png: bytes, caption: str) -> str:
    """A PNG as a Markdown image with a data URI (renders without any file access)."""
    encoded = base64.b64encode(png).decode("ascii")
    return f"**{caption}**\n\n![{caption}](data:image/png;base64,{encoded})\n"


def summary_markdown(stats: DatasetStats) -> str:
    """The paper's figures beside ours, shares and averages to 3 significant digits."""
    section = summary_section(stats, format_for_people)
    return render_table(section.table) + "\n"


def funnel_markdown(stats: DatasetStats) -> str | None:
    """The whole funnel as a Markdown table (None without a funnel)."""
    section = funnel_section(stats)
    return render_sections([section]) if section else None


def stats_markdown(stats: DatasetStats, figures: Mapping[str, bytes]) -> dict[str, str]:
    """Metadata key -> Markdown: `summary`, `funnel` and one `plots/<name>` per figure."""
    entries = {"summary": summary_markdown(stats)}
    funnel = funnel_markdown(stats)
    if funnel:
        entries["funnel"] = funnel
    for name, caption in PLOT_CAPTIONS.items():
        if name in figures:
            entries[f"plots/{name}"] = image_markdown(figures[name], caption)
    return entries
