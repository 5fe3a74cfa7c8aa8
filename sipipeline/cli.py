"""`sipipeline` console command: run the next bootstrap rounds through Dagster, export data."""

from __future__ import annotations

import argparse
import os
import sys
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path

from sipipeline.batches_cli import add_batches_parser
from sipipeline.export_cli import add_export_parser
from sipipeline.paths import PACKAGE_DIR, ROUND_SLOT_TAG, dagster_home
from sipipeline.plan_cli import add_plan_parser
from sipipeline.review_cli import add_review_parser
from sipipeline.run_lock import RunLock, RunLockHeldError
from sipipeline.status_cli import add_status_parser
from sipipeline.trace_cli import add_trace_parser

#: A new instance: no telemetry (the machine may be offline), and one round run at a time.
INSTANCE_SETTINGS = f"""\
telemetry:
  enabled: false
run_queue:
  tag_concurrency_limits:
    - key: "{ROUND_SLOT_TAG}"
      limit: 1
"""


#: Exit status when another round run holds the instance.
BUSY = 3


def _ensure_dagster_home() -> Path:
    """Use DAGSTER_HOME, or `./.dagster_home`, so `dagster dev` later shows the same runs."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        partial = home / "dagster.yaml.partial"
        partial.write_text(INSTANCE_SETTINGS, encoding="utf-8")
        partial.replace(settings)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _take_run_lock(args: argparse.Namespace, description: str) -> RunLock | None:
    """The instance's run lock, or None (after saying why) when another run holds it."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    lock = RunLock(home, wait=getattr(args, "wait", False))

    def waiting(holder: str) -> None:
        print(f"sipipeline: waiting for the round run in progress on {home} ({holder})",
              file=sys.stderr, flush=True)

    try:
        lock.acquire(description, on_wait=waiting)
    except RunLockHeldError as held:
        print(f"sipipeline: not starting: another `sipipeline run` is running a round on "
              f"{home} ({held.holder}). One round runs at a time: wait for it to finish and "
              "run again, or pass --wait to start after it.", file=sys.stderr)
        return None
    return lock


def _run_config(args: argparse.Namespace) -> dict:
    generation: dict = {}
    if args.num_prompts is not None:
        generation["num_prompts"] = args.num_prompts
    if args.random_seed is not None:
        generation["random_seed"] = args.random_seed
    ops: dict = {}
    config: dict = {"loggers": {"console": {"config": {"log_level": args.log_level}}}}
    if generation:
        ops["generated_instructions"] = {"config": generation}
    if args.seed_file:
        ops["seed_pool"] = {"config": {"seed_file": str(Path(args.seed_file).resolve())}}
    if ops:
        config["ops"] = ops
    return config


def run_rounds(args: argparse.Namespace) -> int:
    """Materialize the next `--rounds` rounds on the persistent instance, one run per round.

    The next round is the one after the last *done* round (its run succeeded, checks included,
    and handed its pool on); a round whose last run failed is run again. One round at a time:
    the run lock in DAGSTER_HOME is held from before the instance is opened until the end.
    """
    import dagster as dg

    from sipipeline.defs.config import validate_round_config

    try:
        validate_round_config(_run_config(args))
    except dg.Failure as failure:
        print(f"sipipeline: invalid run config: {failure.description}", file=sys.stderr)
        return 2
    run_id = str(uuid.uuid4())  # known before the lock, so a second starter can name it
    lock = _take_run_lock(args, f"pid {os.getpid()}, run {run_id}, choosing its round")
    if lock is None:
        return BUSY
    try:
        return _run_rounds_locked(args, lock, run_id)
    finally:
        lock.release()


def _run_rounds_locked(args: argparse.Namespace, lock: RunLock, run_id: str) -> int:
    home = _ensure_dagster_home()
    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)

    from sipipeline.definitions import defs
    from sipipeline.defs.automation import handed_off_rounds, round_runs, round_to_run
    from sipipeline.defs.jobs import bootstrap_round_job
    from sipipeline.defs.partitions import ensure_round_partition, round_number
    from sipipeline.defs.round_slot import cli_run_tags, describe_in_flight, fail_orphaned_cli_runs
    from sipipeline.defs.run_failures import failure_summary
    from sipipeline.defs.status import stored_round_funnel
    from sipipeline.defs.storage import RoundStore
    from sipipeline.method.funnel import funnel_lines
    from sipipeline.model.progress import listening
    from sipipeline.paths import storage_base
    from sipipeline.progress_display import progress_display

    store = RoundStore(base_path=storage_base())
    instance = dg.DagsterInstance.get()
    for orphan in fail_orphaned_cli_runs(instance):
        print(f"sipipeline: marked run {orphan.run_id} "
              f"({orphan.tags.get('dagster/partition', '?')}) failed: the `sipipeline run` "
              "that started it is gone", file=sys.stderr, flush=True)
    job = defs.resolve_job_def(bootstrap_round_job.name)
    run_config = _run_config(args)
    for index in range(args.rounds):
        latest, in_flight = round_runs(instance)
        if in_flight:
            print(f"sipipeline: not starting: a round run is queued or running on {home}: "
                  f"{describe_in_flight(in_flight)}. One round runs at a time: wait for it "
                  "to finish (see `make ui`) and run again.", file=sys.stderr)
            return BUSY
        decision = round_to_run(latest, handed_off_rounds(instance))
        key = decision.partition_key
        run_id = run_id if index == 0 else str(uuid.uuid4())
        lock.describe(f"pid {os.getpid()} is running {key} in run {run_id}")
        ensure_round_partition(instance, key)
        print(f"sipipeline: {decision.reason}", flush=True)
        print(f"sipipeline: materializing {key} in run {run_id} (DAGSTER_HOME={home}, "
              f"storage={storage_base()})", flush=True)
        with progress_display() as display, listening(display):
            display.round_key = key
            result = job.execute_in_process(partition_key=key, instance=instance,
                                            run_config=run_config, raise_on_error=False,
                                            run_id=run_id, tags=cli_run_tags())
        if not result.success:
            print(f"sipipeline: {key} failed (run {result.run_id}): "
                  f"{failure_summary(result.all_events)}", file=sys.stderr)
            return 1
        del result  # it holds every output of the run, the whole pool included
        # Counted from the round's own rows and the pool file's footer: no whole-pool read.
        added = int((store.read_added("filtered_tasks", key)["round"]
                     == round_number(key)).sum())
        print(f"sipipeline: {key} done (run {run_id}): {added} new tasks, "
              f"pool {store.info('filtered_tasks', key).rows} tasks", flush=True)
        print("\n".join(funnel_lines(stored_round_funnel(store, key))), flush=True)
        report = store.local_dir(f"reports/{key}") / "report.html"
        if report.is_file():
            print(f"sipipeline: report {report}", flush=True)
    print("sipipeline: see the rounds, lineage and metadata with `make ui` (dagster dev)")
    return 0


def open_ui(args: argparse.Namespace) -> int:
    """`dagster dev` on the instance `sipipeline run` uses, so its rounds show up.

    The instance is created under the run lock first (unless a `sipipeline run` holds it and
    does so), so `dagster dev` never initialises its database at the same moment as a run.
    """
    lock = RunLock(dagster_home())
    try:
        lock.acquire()
    except RunLockHeldError:
        pass  # a `sipipeline run` holds it and creates the instance itself
    else:
        try:
            _ensure_dagster_home()
            import dagster as dg

            dg.DagsterInstance.get().dispose()
        finally:
            lock.release()
    _ensure_dagster_home()
    workspace = PACKAGE_DIR.parent / "workspace.yaml"
    target = ["-w", str(workspace)] if workspace.is_file() else ["-m", "sipipeline.definitions"]
    command = ["dagster", "dev", *target, "-h", args.host, "-p", str(args.port)]
    os.execvp(command[0], command)
    return 0  # not reached


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sipipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="materialize the next N bootstrap rounds")
    run.add_argument("--rounds", type=int, default=1, help="how many rounds (default 1)")
    run.add_argument("--num-prompts", type=int, help="generation requests per round")
    run.add_argument("--random-seed", type=int, help="sampling seed (new seed = fresh samples)")
    run.add_argument("--seed-file", help="seed tasks (JSON lines) for round 1")
    run.add_argument("--wait", action="store_true",
                     help="if a round is already running on this instance, wait for it instead "
                          "of refusing to start")
    run.add_argument("--log-level", default="INFO",
                     choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="console log level")
    run.set_defaults(handler=run_rounds)
    ui = sub.add_parser("ui", help="start the Dagster UI (dagster dev) on the same instance")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(handler=open_ui)
    add_export_parser(sub)
    add_review_parser(sub)
    add_trace_parser(sub)
    add_status_parser(sub)
    add_plan_parser(sub)
    add_batches_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "rounds", 1) < 1:
        print("sipipeline: --rounds must be at least 1", file=sys.stderr)
        return 2
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
