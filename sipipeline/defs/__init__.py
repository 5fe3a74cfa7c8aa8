"""Everything Dagster: partitions, run config, storage, model resources, metadata, assets,
checks, the round job, sensor and schedule — assembled by `build_defs`."""

from __future__ import annotations

import dagster as dg

from sipipeline.defs.resources import ModelResource


def build_defs(storage_base: str, llm: ModelResource) -> dg.Definitions:
    """The sipipeline code location: round data under `storage_base`, the model from `llm`.

    The one place assets, checks, job, automation and resources are put together; the code
    location (`sipipeline.definitions`), the CLI and the tests all build it here.
    """
    from sipipeline.defs import assets
    from sipipeline.defs.automation import AUTOMATION_SCHEDULES, AUTOMATION_SENSORS
    from sipipeline.defs.batch_sensor import build_batch_completion_sensor, in_batch_delivery
    from sipipeline.defs.checks import ROUND_CHECKS
    from sipipeline.defs.jobs import ROUND_ASSETS, bootstrap_round_job
    from sipipeline.defs.storage import ParquetIOManager, RoundStore

    return dg.Definitions(
        assets=[assets.round_handoff, *ROUND_ASSETS, assets.fine_tuning_exports],
        asset_checks=ROUND_CHECKS,
        jobs=[bootstrap_round_job],
        sensors=[*AUTOMATION_SENSORS, build_batch_completion_sensor(in_batch_delivery(llm))],
        schedules=AUTOMATION_SCHEDULES,
        resources={
            "io_manager": ParquetIOManager(base_path=storage_base),
            "round_store": RoundStore(base_path=storage_base),
            "llm": llm,
        },
    )
