"""Everything Dagster: partitions, run config, storage, model resources, metadata, assets,
checks, the round job, sensor and schedule — assembled by `build_defs`."""

from __future__ import annotations

import dagster as dg

from sipipeline.defs.resources import ModelResource


def build_defs(storage_base: str, llm: ModelResource, *, round_config: dict | None = None,
               sensor_running: bool = False, local_path: str | None = None) -> dg.Definitions:
    """The sipipeline code location: round data under `storage_base`, the model from `llm`.

    The one place assets, checks, job, automation and resources are put together; the code
    location (`sipipeline.definitions`), the CLI, the Dagster component and the tests all build
    it here. `round_config` is the round job's default run config (what unattended rounds use),
    `sensor_running` switches the next-round sensor on by default, `local_path` is the local
    working folder (response journal) when the default does not suit.
    """
    from sipipeline.defs import assets
    from sipipeline.defs.automation import AUTOMATION_SCHEDULES, AUTOMATION_SENSORS
    from sipipeline.defs.batch_sensor import build_batch_completion_sensor, in_batch_delivery
    from sipipeline.defs.checks import ROUND_CHECKS
    from sipipeline.defs.execution import round_run_executor
    from sipipeline.defs.jobs import ROUND_ASSETS, bootstrap_round_job, build_round_job
    from sipipeline.defs.review import REVIEW_ASSETS, judge_resource_from_env
    from sipipeline.defs.sensor_status import running_by_default
    from sipipeline.defs.storage import ParquetIOManager, RoundStore

    sensors = AUTOMATION_SENSORS
    if sensor_running:
        sensors = [running_by_default(sensor) for sensor in sensors]
    return dg.Definitions(
        assets=[assets.round_handoff, *ROUND_ASSETS, assets.fine_tuning_exports,
                *REVIEW_ASSETS],
        asset_checks=ROUND_CHECKS,
        jobs=[build_round_job(round_config) if round_config else bootstrap_round_job],
        sensors=[*sensors, build_batch_completion_sensor(in_batch_delivery(llm))],
        schedules=AUTOMATION_SCHEDULES,
        executor=round_run_executor,
        resources={
            "io_manager": ParquetIOManager(base_path=storage_base),
            "round_store": RoundStore(base_path=storage_base, local_path=local_path),
            "llm": llm,
            "judge_llm": judge_resource_from_env(llm),
        },
    )
