"""The round job: the six round assets (and their checks) for one `bootstrap_round` partition."""

from __future__ import annotations

import dagster as dg

from sipipeline.defs import assets
from sipipeline.defs.automation import ROUND_JOB_NAME
from sipipeline.paths import ROUND_SLOT_TAG

ROUND_ASSETS = [
    assets.seed_pool,
    assets.generated_instructions,
    assets.classification_labels,
    assets.instances,
    assets.filtered_tasks,
    assets.dataset_stats,
    assets.round_completion,
]



def build_round_job(run_config: dict | None = None) -> dg.UnresolvedAssetJobDefinition:
    """The round job; `run_config` (e.g. a smaller `num_prompts`) becomes its default config,
    used by every run that does not bring its own (the sensor's and the schedule's)."""
    return dg.define_asset_job(
        ROUND_JOB_NAME,
        selection=dg.AssetSelection.assets(*ROUND_ASSETS),
        description="One Self-Instruct bootstrap round: generate, classify, make instances, "
                    "filter.",
        # The instance's run queue admits one run with this tag at a time (see
        # cli.INSTANCE_SETTINGS, deploy/dagster.yaml), so rounds launched by hand, the sensor
        # or the schedule never overlap.
        tags={ROUND_SLOT_TAG: "bootstrap"},
        config=run_config or None,
    )


bootstrap_round_job = build_round_job()
