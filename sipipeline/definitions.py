"""The sipipeline code location: `dagster dev -w workspace.yaml` loads `defs` from here."""

import dagster as dg

from sipipeline.defs import assets
from sipipeline.defs.automation import AUTOMATION_SCHEDULES, AUTOMATION_SENSORS
from sipipeline.defs.checks import ROUND_CHECKS
from sipipeline.defs.resources import llm_resource_from_env
from sipipeline.defs.round_store import RoundStore
from sipipeline.defs.storage import ParquetIOManager
from sipipeline.paths import ROUND_SLOT_TAG, storage_base

ROUND_ASSETS = [
    assets.seed_pool,
    assets.generated_instructions,
    assets.classification_labels,
    assets.instances,
    assets.filtered_tasks,
    assets.dataset_stats,
    assets.round_completion,
]

bootstrap_round_job = dg.define_asset_job(
    "bootstrap_round_job",
    selection=dg.AssetSelection.assets(*ROUND_ASSETS),
    description="One Self-Instruct bootstrap round: generate, classify, make instances, filter.",
    # The instance's run queue admits one run with this tag at a time (see cli.INSTANCE_SETTINGS),
    # so rounds launched by hand, the sensor or the schedule never overlap.
    tags={ROUND_SLOT_TAG: "bootstrap"},
)

defs = dg.Definitions(
    assets=[assets.round_handoff, *ROUND_ASSETS, assets.fine_tuning_exports],
    asset_checks=ROUND_CHECKS,
    jobs=[bootstrap_round_job],
    sensors=AUTOMATION_SENSORS,
    schedules=AUTOMATION_SCHEDULES,
    resources={
        "io_manager": ParquetIOManager(base_path=storage_base()),
        "round_store": RoundStore(base_path=storage_base()),
        "llm": llm_resource_from_env(),
    },
)
