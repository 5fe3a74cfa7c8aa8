"""`batch_completion_sensor`: finish a round whose step ended with its batches still running.

A step in batch delivery waits up to `batch_wait_s`; past it the step fails with "batches
pending" and tags its run (`BATCHES_PENDING_TAG`), so no run is held open for a day. Each tick
this sensor looks at such runs it has not handled yet (the cursor lists them), polls their
batches that have not ended (one small GET each), and once every batch of a run has ended it
launches the round's remaining steps - the pending asset and everything after it - with the
run's config. That run downloads the output, journals it, and goes on; if it must wait again
(an expired batch's missing requests were sent again) it ends pending again and the cycle
repeats. With no pending run a tick is a single run-storage query.
"""

from __future__ import annotations

import json

import dagster as dg

from sipipeline.defs.automation import ROUND_JOB_NAME, STARTED_BY_TAG
from sipipeline.defs.resources import (
    BATCHES_PENDING_TAG,
    DELIVERY_BATCH,
    ModelResource,
)
from sipipeline.defs.storage import RoundStore
from sipipeline.model.batch import refresh_batch
from sipipeline.model.batch_api import BatchApi, BatchApiError
from sipipeline.model.batch_manifest import TERMINAL_STATES, BatchManifest, BatchRow, Phase
from sipipeline.model.types import ModelAccessError

SENSOR_NAME = "batch_completion_sensor"
AFTER_BATCHES_TAG = "sipipeline/after_batches_of"
CURSOR_KEEP = 500
POLLS_PER_TICK = 20
POLL_TIMEOUT_S = 5.0  # a tick must end within seconds, even if the endpoint does not answer


def in_batch_delivery(llm: ModelResource) -> bool:
    """Whether `llm` uses the Batch API (a `dg.EnvVar` field is read from the environment)."""
    value = llm.delivery
    if isinstance(value, dg.EnvVar):
        value = value.get_value() or ""
    return value == DELIVERY_BATCH


def journal_path(round_store: RoundStore) -> str:
    return str(round_store.local_dir("journal") / "llm_journal.sqlite")


def build_batch_completion_sensor(running: bool) -> dg.SensorDefinition:
    """The sensor, running by default when the code location loads in batch delivery."""
    status = dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED
    return dg.sensor(
        name=SENSOR_NAME, job_name=ROUND_JOB_NAME, minimum_interval_seconds=60,
        default_status=status,
        description="Re-launches a round once the batches its 'batches pending' step left "
                    "running have all ended (answered steps are read from the journal).",
    )(batch_completion_sensor)


def batch_completion_sensor(context: dg.SensorEvaluationContext, llm: ModelResource,
                            round_store: RoundStore) -> dg.SensorResult | dg.SkipReason:
    """One tick: re-launch the runs whose batches have all ended (see the module)."""
    handled: list[str] = json.loads(context.cursor) if context.cursor else []
    runs = [run for run in context.instance.get_runs(
        filters=dg.RunsFilter(tags={BATCHES_PENDING_TAG: "true"},
                              statuses=[dg.DagsterRunStatus.FAILURE]), limit=100)
            if run.run_id not in handled]
    if not runs:
        return dg.SkipReason("no run is waiting for batches")
    if llm.delivery != DELIVERY_BATCH:
        return dg.SkipReason("the model resource is not in batch delivery")
    path = journal_path(round_store)
    manifest = BatchManifest(path)
    try:
        api = BatchApi(llm.client_config(path), timeout_s=POLL_TIMEOUT_S)
        requests, waiting = [], []
        polls = 0
        for run in runs:
            rows = [row for row in manifest.batches() if row.run_id == run.run_id]
            running = [row for row in rows if _running(row)]
            for row in running[:max(0, POLLS_PER_TICK - polls)]:
                polls += 1
                refresh_batch(api, manifest, row)
            if any(_running(row) for row in rows):
                waiting.append(run.run_id)
                continue
            handled.append(run.run_id)
            if not rows:
                continue
            requests.append(dg.RunRequest(
                run_key=f"batches-done-{run.run_id}",
                partition_key=rows[0].partition_key or run.tags.get("dagster/partition"),
                run_config=run.run_config,
                tags={STARTED_BY_TAG: SENSOR_NAME, AFTER_BATCHES_TAG: run.run_id}))
    except (BatchApiError, ModelAccessError) as error:
        return dg.SkipReason(f"could not poll the batches: {error}")
    finally:
        manifest.close()
    cursor = json.dumps(handled[-CURSOR_KEEP:])
    if not requests:
        return dg.SensorResult(skip_reason=f"{len(waiting)} runs wait for their batches",
                               cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)


def _running(row: BatchRow) -> bool:
    return row.phase == Phase.SUBMITTED and row.state not in TERMINAL_STATES
