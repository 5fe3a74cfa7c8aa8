"""`dataset_stats` of a fake-model round: plots embedded in the metadata, the whole funnel."""

from __future__ import annotations

import base64
import re

from sipipeline.method.funnel import round_funnel

DATA_URI = re.compile(r"\(data:image/png;base64,([A-Za-z0-9+/=]+)\)")


def _metadata(result, asset: str) -> dict:
    (materialization,) = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in materialization.metadata.items()}


def test_stats_metadata_embeds_the_plots_and_the_funnel_reaches_the_pool(harness_for):
    harness = harness_for()
    result = harness.run_round(1, num_prompts=4)
    assert result.success
    stats = _metadata(result, "dataset_stats")
    for name in ("funnel", "lengths", "rouge_l_to_seed"):
        (encoded,) = DATA_URI.findall(stats[f"plots/{name}"])
        assert base64.b64decode(encoded).startswith(b"\x89PNG\r\n\x1a\n")
    assert "paper (GPT-3)" in stats["summary"]
    assert not any(isinstance(v, str) and "file://" in v for v in stats.values())
    assert str(stats["report_file"]).endswith("report.html")

    stages = round_funnel(harness.read("generated_instructions", 1),
                          harness.read("classification_labels", 1),
                          harness.read("instances", 1), harness.read("filtered_tasks", 1), 1)
    added = _metadata(result, "filtered_tasks")["added_this_round"]
    assert stages[-1].key == "added_to_pool" and stages[-1].count == added
    assert stats["stats/round/funnel/added_to_pool"] == added
    assert stats["stats/round/funnel/candidates"] == len(harness.read("generated_instructions", 1))
    for stage in stages:
        assert stats[f"stats/round/funnel/{stage.key}"] == stage.count
    assert f"| {stages[-1].label} | {added:,} |" in stats["funnel"]
