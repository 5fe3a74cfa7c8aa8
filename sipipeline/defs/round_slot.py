"""One round at a time, whoever starts it.

Runs launched through the instance (UI, sensor, schedule) pass its run queue, which admits one
run tagged `sipipeline/round_slot` at a time. `sipipeline run` executes in process and bypasses
that queue, so it holds the file lock in DAGSTER_HOME (`sipipeline.run_lock`) and refuses to
start while any round run is queued or running; the queue in turn counts the CLI's run as
in progress, so a round launched from the UI meanwhile waits in the queue.

A `sipipeline run` that was killed leaves its run STARTED forever (no process reports its end).
The next `sipipeline run` on the same host holds the lock, so it knows that process is gone and
marks such runs failed, which lets the round run again.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence

import dagster as dg

from sipipeline.defs.automation import NOT_FINISHED, STARTED_BY_TAG, RoundRun
from sipipeline.defs.partitions import round_key

CLI_STARTER = "sipipeline run"
HOST_TAG = "sipipeline/host"
PID_TAG = "sipipeline/pid"


def cli_run_tags() -> dict[str, str]:
    """Tags of a round run started by this `sipipeline run` process."""
    return {STARTED_BY_TAG: CLI_STARTER, HOST_TAG: socket.gethostname(),
            PID_TAG: str(os.getpid())}


def fail_orphaned_cli_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Mark failed the unfinished runs of `sipipeline run` processes on this host that are gone.

    Call only while holding the run lock: then no other `sipipeline run` on this host is alive.
    """
    runs = instance.get_runs(filters=dg.RunsFilter(
        tags={STARTED_BY_TAG: CLI_STARTER, HOST_TAG: socket.gethostname()},
        statuses=list(NOT_FINISHED)))
    for run in runs:
        instance.report_run_failed(
            run, message=f"The `{CLI_STARTER}` process (pid {run.tags.get(PID_TAG, '?')}) that "
                         "ran this round is gone (killed or crashed) without finishing it.")
    return list(runs)


def describe_in_flight(in_flight: Sequence[RoundRun]) -> str:
    """`round_002 (queued, run 1a2b3c4d-…)`, … for a refusal message."""
    return ", ".join(f"{round_key(run.round)} ({run.status.value.lower()}, run {run.run_id})"
                     for run in sorted(in_flight, key=lambda r: r.round))
