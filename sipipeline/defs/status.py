"""The state of the rounds on one screen: what ran, what it added, what it cost, what is stale.

`collect_status` reads the Dagster instance (runs, staleness as the UI computes it, whether the
sensor and schedule are on), the round store (the pools) and the response journal (spend);
`status_text` lays that out for a terminal.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pandas as pd

from sipipeline.defs.automation import (
    NOT_FINISHED,
    SCHEDULE_NAME,
    SENSOR_NAME,
    AutomationSettings,
    next_round_for,
    pool_size_reader,
    round_runs,
)
from sipipeline.defs.jobs import ROUND_ASSETS
from sipipeline.defs.partitions import round_key, round_number
from sipipeline.defs.storage import RoundStore, StaleRoundError
from sipipeline.method.funnel import FunnelStage, round_funnel
from sipipeline.method.vocabulary import Origin
from sipipeline.model.journal_reader import PurposeSpend, spend_by_purpose


@dataclass(frozen=True)
class RoundLine:
    """One round: its latest run, whether its pool exists, and what it added."""

    key: str
    run_status: str | None  # the latest run's status, None when no run is recorded
    run_id: str | None
    run_ended: str | None
    materialized: bool
    added: int | None
    pool_size: int | None

    @property
    def state(self) -> str:
        if self.run_status in {s.value for s in NOT_FINISHED}:
            return "running" if self.run_status == "STARTED" else self.run_status.lower()
        if self.run_status in ("FAILURE", "CANCELED"):
            return "failed"
        if self.materialized and self.run_status in (None, "SUCCESS"):
            return "done"
        return "incomplete"


@dataclass
class RoundsStatus:
    """Everything `sipipeline status` shows."""

    storage: str
    rounds: list[RoundLine]
    pool_size: int
    seed_tasks: int
    machine_tasks: int
    spend: list[PurposeSpend]
    stale: list[str] = field(default_factory=list)
    sensor_on: bool = False
    schedule_on: bool = False
    next_round: str = ""

    @property
    def done(self) -> list[RoundLine]:
        return [r for r in self.rounds if r.state == "done"]

    @property
    def failed(self) -> list[RoundLine]:
        return [r for r in self.rounds if r.state == "failed"]

    def as_dict(self) -> dict:
        """A JSON-ready form (for `--json`)."""
        return {
            "storage": self.storage,
            "rounds": [{**vars(r), "state": r.state} for r in self.rounds],
            "rounds_done": len(self.done), "rounds_failed": len(self.failed),
            "pool_size": self.pool_size, "seed_tasks": self.seed_tasks,
            "machine_tasks": self.machine_tasks,
            "spend": [vars(s) for s in self.spend],
            "spend_usd": sum(s.cost_usd for s in self.spend),
            "stale": self.stale, "sensor_on": self.sensor_on,
            "schedule_on": self.schedule_on, "next_round": self.next_round,
        }


def instigator_is_on(instance: dg.DagsterInstance, name: str, kind: str) -> bool:
    """Whether the sensor or schedule of this name is switched on (any code location).

    Dagster's private API (instigator state has no public reader), as in `automation`.
    """
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.scheduler.instigation import InstigatorStatus

    instigator_type = InstigatorType.SENSOR if kind == "sensor" else InstigatorType.SCHEDULE
    return any(state.name == name and state.status in (InstigatorStatus.RUNNING,
                                                       InstigatorStatus.DECLARED_IN_CODE)
               for state in instance.all_instigator_state(instigator_type=instigator_type))


def stale_partitions(instance: dg.DagsterInstance, defs: dg.Definitions,
                     keys: list[str]) -> list[str]:
    """`asset[round]: why` for every round asset Dagster's UI would show as stale."""
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._time import get_current_datetime

    graph = defs.resolve_asset_graph()
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(),
                                         last_event_id=None),
        instance=instance, asset_graph=graph)
    resolver = CachingStaleStatusResolver(instance, graph, loading_context=view)
    lines = []
    for key in keys:
        for asset in ROUND_ASSETS:
            asset_key = dg.AssetKey(asset.key.path)
            if resolver.get_status(asset_key, key) != StaleStatus.STALE:
                continue
            causes = resolver.get_stale_root_causes(asset_key, key)
            why = "; ".join(sorted({
                f"{c.key.asset_key.to_user_string()}"
                + (f"[{c.key.partition_key}]" if c.key.partition_key else "")
                + f" {c.reason}" for c in causes})) or "upstream changed"
            lines.append(f"{asset_key.to_user_string()}[{key}]: {why}")
    return lines


def stored_round_funnel(store: RoundStore, key: str) -> list[FunnelStage]:
    """The whole funnel of a stored round (the same stages its statistics and plot show).

    Only the rows the round added are read from the pool: the funnel counts nothing else.
    """
    return round_funnel(store.read("generated_instructions", key),
                        store.read("classification_labels", key), store.read("instances", key),
                        store.read_added("filtered_tasks", key), round_number(key))


def _pool_counts(store: RoundStore, done_keys: list[str]) -> tuple[pd.DataFrame | None, int]:
    """The newest stored pool that is still whole (a round built on a re-materialized earlier
    round is stale: Dagster's staleness lines say so, and its pool is not counted)."""
    for key in reversed(done_keys):
        try:
            pool = store.read("filtered_tasks", key)
        except StaleRoundError:
            continue
        return pool, len(pool)
    return None, 0


def _ended(instance: dg.DagsterInstance, run_id: str) -> str | None:
    record = instance.get_run_record_by_id(run_id)
    stamp = record.end_time if record else None
    return (_dt.datetime.fromtimestamp(stamp, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            if stamp else None)


def collect_status(instance: dg.DagsterInstance, store: RoundStore,
                   defs: dg.Definitions | None = None) -> RoundsStatus:
    """Read the instance, the store and the journal (staleness only when `defs` is given)."""
    latest, _ = round_runs(instance)
    materialized = store.rounds("filtered_tasks")
    pool, size = _pool_counts(store, materialized)
    numbers = sorted(set(latest) | {round_number(k) for k in materialized})
    pool_size_of = pool_size_reader(instance)
    added_by_round: dict[int, int] = {}
    if pool is not None:
        machine = pool[pool["origin"].astype(str) == Origin.MACHINE]
        added_by_round = machine["round"].astype(int).value_counts().to_dict()
    lines = []
    for number in numbers:
        key = round_key(number)
        run = latest.get(number)
        done = key in materialized
        lines.append(RoundLine(
            key=key, run_status=run.status.value if run else None,
            run_id=run.run_id if run else None,
            run_ended=_ended(instance, run.run_id) if run else None,
            materialized=done, added=int(added_by_round.get(number, 0)) if done else None,
            pool_size=pool_size_of(number) if done else None))
    seeds = int((pool["origin"].astype(str) == Origin.SEED).sum()) if pool is not None else 0
    try:
        decision = next_round_for(instance, AutomationSettings.from_env()).reason
    except ValueError as error:  # a bad automation setting in the environment
        decision = f"automation settings: {error}"
    return RoundsStatus(
        storage=store.base_path, rounds=lines, pool_size=size, seed_tasks=seeds,
        machine_tasks=size - seeds, spend=spend_by_purpose(Path(store.journal_path())),
        stale=stale_partitions(instance, defs, [r.key for r in lines]) if defs else [],
        sensor_on=instigator_is_on(instance, SENSOR_NAME, "sensor"),
        schedule_on=instigator_is_on(instance, SCHEDULE_NAME, "schedule"),
        next_round=decision)


def status_text(status: RoundsStatus) -> str:
    """One screen: rounds, pool, spend, staleness, automation."""
    out = [f"Rounds: {len(status.done)} done, {len(status.failed)} failed "
           f"(storage {status.storage})"]
    for line in status.rounds:
        run = f"run {line.run_id[:8]}" if line.run_id else "no run recorded"
        when = f", ended {line.run_ended}" if line.run_ended else ""
        added = f"+{line.added} tasks → pool {line.pool_size}" if line.materialized else ""
        out.append(f"  {line.key}  {line.state:<10} {added:<24} ({run}{when})")
    if not status.rounds:
        out.append("  none yet: `sipipeline run` starts round 1")
    out.append(f"Pool: {status.pool_size} tasks ({status.seed_tasks} seed, "
               f"{status.machine_tasks} machine)")
    total = sum(s.cost_usd for s in status.spend)
    tokens = sum(s.prompt_tokens + s.completion_tokens for s in status.spend)
    out.append(f"Spend: ${total:.4f}, {tokens:,} tokens, "
               f"{sum(s.calls for s in status.spend):,} calls")
    for spend in status.spend:
        out.append(f"  {spend.purpose:<24} ${spend.cost_usd:.4f}  {spend.calls:,} calls  "
                   f"{spend.prompt_tokens:,} + {spend.completion_tokens:,} tokens")
    out.append(f"Stale: {len(status.stale)}" + (":" if status.stale else " (all fresh)"))
    out += [f"  {line}" for line in status.stale]
    out.append(f"Automation: sensor {SENSOR_NAME} {'ON' if status.sensor_on else 'off'}, "
               f"schedule {SCHEDULE_NAME} {'ON' if status.schedule_on else 'off'}")
    out.append(f"Next: {status.next_round}")
    return "\n".join(out) + "\n"
