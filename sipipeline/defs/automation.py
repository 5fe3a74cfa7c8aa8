"""Rounds that run themselves: a next-round sensor and a cron schedule, both off by default.

Both make the same decision (`decide_next_round`, plain Python): never while a round run is
queued or running; otherwise the round after the latest one, but only once that round is done
— its last run succeeded and handed its pool on (`round_completion`, the round's last step,
observed `round_handoff[N+1]`; a failed check or step fails the run before that) — and only
until the pool reaches the target size or the maximum number of rounds has run.
`sipipeline run` uses the same facts (`round_to_run`) but re-runs a round that is not done.

- `next_round_sensor` chains rounds: it adds the next `bootstrap_round` partition and requests
  a run of `bootstrap_round_job` for it.
- `round_schedule` does the same on a cron (nightly by default), for a fixed cadence. It stands
  aside while the sensor is running, so the two never start rounds side by side.

Settings come from the environment of the code location (read at every evaluation):
`SIPIPELINE_MAX_ROUNDS` (default 10), `SIPIPELINE_TARGET_POOL_SIZE` (default: none), and, read
when the definitions load, `SIPIPELINE_ROUND_CRON` (default `0 2 * * *`) and
`SIPIPELINE_ROUND_CRON_TIMEZONE` (default `UTC`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import dagster as dg

from sipipeline.defs.cost_plan import budget_shortfall
from sipipeline.defs.partitions import (
    RoundKeyError,
    bootstrap_rounds,
    ensure_round_partition,
    round_key,
    round_number,
)
from sipipeline.defs.resources import ModelResource
from sipipeline.defs.storage import RoundStore

ROUND_JOB_NAME = "bootstrap_round_job"
SENSOR_NAME = "next_round_sensor"
SCHEDULE_NAME = "round_schedule"
PARTITION_TAG = "dagster/partition"
STARTED_BY_TAG = "sipipeline/started_by"
AFTER_RUN_TAG = "sipipeline/after_run"
HANDOFF_KEY = dg.AssetKey("round_handoff")

MAX_ROUNDS_ENV = "SIPIPELINE_MAX_ROUNDS"
TARGET_POOL_SIZE_ENV = "SIPIPELINE_TARGET_POOL_SIZE"
CRON_ENV = "SIPIPELINE_ROUND_CRON"
CRON_TIMEZONE_ENV = "SIPIPELINE_ROUND_CRON_TIMEZONE"
DEFAULT_MAX_ROUNDS = 10
DEFAULT_CRON = "0 2 * * *"
DEFAULT_CRON_TIMEZONE = "UTC"

NOT_FINISHED = frozenset({
    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.SUSPENDED,
})
RUN_HISTORY_LIMIT = 2000
#: Assets whose runs neither wait for nor hold up rounds: a review running, or failing, for
#: round N is not round N's run.
OFF_ROUND_ASSETS = frozenset({dg.AssetKey("quality_review"), dg.AssetKey("human_review")})


class AutomationSettingsError(ValueError):
    """An automation setting in the environment is not a usable value."""


@dataclass(frozen=True)
class AutomationSettings:
    """When automatic rounds stop: after `max_rounds`, or once the pool has `target_pool_size`."""

    max_rounds: int = DEFAULT_MAX_ROUNDS
    target_pool_size: int | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AutomationSettings:
        environ = os.environ if environ is None else environ
        return cls(
            max_rounds=_positive_int(environ, MAX_ROUNDS_ENV, DEFAULT_MAX_ROUNDS),
            target_pool_size=_positive_int(environ, TARGET_POOL_SIZE_ENV, None),
        )


def _positive_int(environ: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = (environ.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise AutomationSettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < 1:
        raise AutomationSettingsError(f"{name}={raw!r} must be at least 1")
    return value


@dataclass(frozen=True)
class RoundRun:
    """The facts about one run of a round that the decision needs."""

    round: int
    status: dg.DagsterRunStatus
    run_id: str


@dataclass(frozen=True)
class NextRound:
    """The decision: a round to start (`round_number` set) or why not (`reason`)."""

    round_number: int | None
    reason: str
    after_run_id: str | None = None

    @property
    def partition_key(self) -> str | None:
        return round_key(self.round_number) if self.round_number is not None else None


FIRST_ROUND = NextRound(1, "No round has run yet: starting the first one.")


def _last_round(latest_runs: Mapping[int, RoundRun],
                handed_off: set[int]) -> tuple[int, RoundRun | None]:
    """The highest round that ran or handed its pool on, and its latest run (if any)."""
    last = max(set(latest_runs) | set(handed_off))
    return last, latest_runs.get(last)


def decide_next_round(latest_runs: Mapping[int, RoundRun], in_flight: Sequence[RoundRun],
                      handed_off: set[int],
                      pool_size_of: Callable[[int], int | None],
                      settings: AutomationSettings) -> NextRound:
    """Which round to start now, if any.

    `latest_runs` holds the most recent run of each round, `in_flight` every round run that is
    queued or running, `handed_off` the rounds whose pool a completed run handed on, and
    `pool_size_of(n)` the size of round n's pool.
    """
    if in_flight:
        busy = ", ".join(f"{round_key(r.round)} ({r.status.value.lower()}, run {r.run_id[:8]})"
                         for r in sorted(in_flight, key=lambda r: r.round))
        return NextRound(None, f"A round is already queued or running: {busy}. "
                               "Rounds of a pool run one at a time.")
    if not latest_runs and not handed_off:
        return FIRST_ROUND
    last, run = _last_round(latest_runs, handed_off)
    if run is not None and run.status != dg.DagsterRunStatus.SUCCESS:
        return NextRound(None, f"The last run of {round_key(last)} (run {run.run_id[:8]}) "
                               f"ended {run.status.value}. Fix and re-run it; rounds "
                               "continue after a successful run.")
    if last not in handed_off:
        return NextRound(None, f"{round_key(last)} has not handed its pool on yet (only part "
                               "of the round ran). Materialize the whole round.")
    if last >= settings.max_rounds:
        return NextRound(None, f"{round_key(last)} reached the maximum of "
                               f"{settings.max_rounds} rounds ({MAX_ROUNDS_ENV}).")
    size = pool_size_of(last)
    target = settings.target_pool_size
    if target is not None and size is not None and size >= target:
        return NextRound(None, f"The pool after {round_key(last)} has {size} tasks, at or above "
                               f"the target of {target} ({TARGET_POOL_SIZE_ENV}).")
    return NextRound(last + 1, f"{round_key(last)} succeeded"
                               + (f" with a pool of {size} tasks" if size is not None else "")
                               + f": starting {round_key(last + 1)}.",
                     after_run_id=run.run_id if run is not None else None)


def round_to_run(latest_runs: Mapping[int, RoundRun], handed_off: set[int]) -> NextRound:
    """The round a manual start (`sipipeline run`) materializes: the one after the last done
    round, or the last round again when it is not done (its last run failed or stopped early).

    Rounds in flight are the caller's concern (it refuses to start beside them).
    """
    if not latest_runs and not handed_off:
        return FIRST_ROUND
    last, run = _last_round(latest_runs, handed_off)
    if run is not None and run.status != dg.DagsterRunStatus.SUCCESS:
        return NextRound(last, f"The last run of {round_key(last)} (run {run.run_id[:8]}) "
                               f"ended {run.status.value}: running {round_key(last)} again.")
    if last not in handed_off:
        return NextRound(last, f"{round_key(last)} did not hand its pool on: running it again.")
    return NextRound(last + 1, f"{round_key(last)} is done: starting {round_key(last + 1)}.",
                     after_run_id=run.run_id if run is not None else None)


# --------------------------------------------------------------------------- reading the instance
def _round_of(run: dg.DagsterRun) -> int | None:
    key = run.tags.get(PARTITION_TAG)
    if not key:
        return None
    try:
        return round_number(key)
    except RoundKeyError:
        return None


def round_runs(instance: dg.DagsterInstance) -> tuple[dict[int, RoundRun], list[RoundRun]]:
    """The latest run of each round and the round runs not finished yet (any job, except
    runs of review assets only)."""
    latest: dict[int, RoundRun] = {}
    in_flight: list[RoundRun] = []
    runs = instance.get_runs(filters=dg.RunsFilter(tags={PARTITION_TAG: _known_round_keys(
        instance)}), limit=RUN_HISTORY_LIMIT)
    for run in runs:  # newest first
        number = _round_of(run)
        if number is None or (run.asset_selection and run.asset_selection <= OFF_ROUND_ASSETS):
            continue
        summary = RoundRun(number, run.status, run.run_id)
        latest.setdefault(number, summary)
        if run.status in NOT_FINISHED:
            in_flight.append(summary)
    return latest, in_flight


def _known_round_keys(instance: dg.DagsterInstance) -> list[str]:
    return list(instance.get_dynamic_partitions(bootstrap_rounds.name)) or ["round_001"]


def _handoff_records(instance: dg.DagsterInstance) -> list:
    """Every observation of `round_handoff`, newest first."""
    records, cursor = [], None
    while True:
        page = instance.fetch_observations(HANDOFF_KEY, limit=RUN_HISTORY_LIMIT, cursor=cursor)
        records.extend(page.records)
        if not page.has_more:
            return records
        cursor = page.cursor


def handed_off_rounds(instance: dg.DagsterInstance) -> set[int]:
    """Rounds N whose pool a completed run handed on (`round_handoff[N+1]` was observed)."""
    rounds = set()
    for record in _handoff_records(instance):
        try:
            rounds.add(round_number(record.partition_key or "") - 1)
        except RoundKeyError:
            continue
    return rounds


def done_rounds(instance: dg.DagsterInstance) -> list[int]:
    """Rounds that are done, in order: they handed their pool on, and their latest run (if the
    instance still has it) succeeded."""
    latest, _ = round_runs(instance)
    return sorted(number for number in handed_off_rounds(instance)
                  if number not in latest or latest[number].status == dg.DagsterRunStatus.SUCCESS)


def pool_size_reader(instance: dg.DagsterInstance) -> Callable[[int], int | None]:
    """Reads the size of the pool round N handed on (its latest `round_handoff[N+1]`)."""

    def pool_size_of(number: int) -> int | None:
        records = instance.fetch_observations(
            dg.AssetRecordsFilter(asset_key=HANDOFF_KEY,
                                  asset_partitions=[round_key(number + 1)]), limit=1).records
        observation = records[0].asset_observation if records else None
        size = observation.metadata.get("pool_size") if observation else None
        return int(size.value) if size is not None else None

    return pool_size_of


def next_round_for(instance: dg.DagsterInstance,
                   settings: AutomationSettings | None = None) -> NextRound:
    """The decision for the rounds recorded in this Dagster instance."""
    latest, in_flight = round_runs(instance)
    return decide_next_round(latest, in_flight, handed_off_rounds(instance),
                             pool_size_reader(instance),
                             settings or AutomationSettings.from_env())


def _run_request(decision: NextRound, started_by: str) -> dg.RunRequest:
    key = decision.partition_key
    after = decision.after_run_id or "start"
    return dg.RunRequest(
        run_key=f"{key}:after:{after}",
        partition_key=key,
        tags={STARTED_BY_TAG: started_by, AFTER_RUN_TAG: after},
    )


# --------------------------------------------------------------------------- Dagster definitions
@dg.sensor(
    name=SENSOR_NAME,
    job_name=ROUND_JOB_NAME,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Starts the next bootstrap round after the previous one succeeded, until "
                f"{MAX_ROUNDS_ENV} rounds (default {DEFAULT_MAX_ROUNDS}) or a pool of "
                f"{TARGET_POOL_SIZE_ENV} tasks; never while a round is queued or running, nor "
                "when the budget (SIPIPELINE_BUDGET_USD) cannot cover the projected round.",
)
def next_round_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    decision = next_round_for(context.instance)
    if decision.round_number is None:
        return dg.SensorResult(skip_reason=decision.reason)
    shortfall = _budget_shortfall(context, decision.round_number)
    if shortfall is not None:
        return dg.SensorResult(skip_reason=dg.SkipReason(shortfall))
    context.log.info(decision.reason)
    return dg.SensorResult(
        run_requests=[_run_request(decision, SENSOR_NAME)],
        dynamic_partitions_requests=[
            bootstrap_rounds.build_add_request([decision.partition_key])],
    )


def _budget_shortfall(context: dg.SensorEvaluationContext, number: int) -> str | None:
    """The budget check of the code location's model and storage (none without them)."""
    repository = context.repository_def
    definitions = repository.get_top_level_resources() if repository is not None else {}
    if "llm" not in definitions or "round_store" not in definitions:
        return None
    with dg.build_resources({key: definitions[key] for key in ("llm", "round_store")}
                            ) as resources:
        llm, store = resources.llm, resources.round_store
        if not isinstance(llm, ModelResource) or not isinstance(store, RoundStore):
            return None
        return budget_shortfall(llm, store, number)


def sensor_is_running(instance: dg.DagsterInstance, name: str = SENSOR_NAME) -> bool:
    """Whether a sensor of this name is switched on in the instance (any code location).

    The one use of Dagster's private API in sipipeline (instigator state has no public reader),
    checked against dagster 1.13.27.
    """
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.scheduler.instigation import InstigatorStatus

    return any(
        state.name == name and state.status in (InstigatorStatus.RUNNING,
                                                InstigatorStatus.DECLARED_IN_CODE)
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR))


def _round_schedule(context: dg.ScheduleEvaluationContext):
    if sensor_is_running(context.instance):
        return dg.SkipReason(f"{SENSOR_NAME} is running and starts rounds itself; the schedule "
                             "stands aside so two rounds never run at once.")
    decision = next_round_for(context.instance)
    if decision.round_number is None:
        return dg.SkipReason(decision.reason)
    # Schedules cannot return partition requests: add the round before asking for its run.
    ensure_round_partition(context.instance, decision.partition_key)
    return _run_request(decision, SCHEDULE_NAME)


def build_round_schedule(cron: str | None = None,
                         timezone: str | None = None) -> dg.ScheduleDefinition:
    """The round schedule on `cron` (default: `$SIPIPELINE_ROUND_CRON`, else nightly 02:00)."""
    cron = cron or os.environ.get(CRON_ENV) or DEFAULT_CRON
    timezone = timezone or os.environ.get(CRON_TIMEZONE_ENV) or DEFAULT_CRON_TIMEZONE
    return dg.schedule(
        cron_schedule=cron,
        name=SCHEDULE_NAME,
        job_name=ROUND_JOB_NAME,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Runs the next bootstrap round on a fixed cadence ({cron}, {timezone}); "
                    "skips while a round is queued or running, after a failed round, and while "
                    f"{SENSOR_NAME} is on.",
    )(_round_schedule)


round_schedule = build_round_schedule()

AUTOMATION_SENSORS = [next_round_sensor]
AUTOMATION_SCHEDULES = [round_schedule]
