"""`sipipeline` console command: run the next bootstrap rounds through Dagster, export data."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from sipipeline.batches_cli import add_batches_parser
from sipipeline.export_cli import add_export_parser
from sipipeline.paths import PACKAGE_DIR, ROUND_SLOT_TAG, dagster_home

#: A new instance: no telemetry (the machine may be offline), and one round run at a time.
INSTANCE_SETTINGS = f"""\
telemetry:
  enabled: false
run_queue:
  tag_concurrency_limits:
    - key: "{ROUND_SLOT_TAG}"
      limit: 1
"""


def _ensure_dagster_home() -> Path:
    """Use DAGSTER_HOME, or `./.dagster_home`, so `dagster dev` later shows the same runs."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        settings.write_text(INSTANCE_SETTINGS, encoding="utf-8")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


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
    """Materialize the next `--rounds` rounds on the persistent instance, one run per round."""
    home = _ensure_dagster_home()
    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)

    from sipipeline.definitions import defs
    from sipipeline.defs.jobs import bootstrap_round_job
    from sipipeline.defs.partitions import bootstrap_rounds, round_key, round_number
    from sipipeline.defs.storage import RoundStore
    from sipipeline.paths import storage_base

    store = RoundStore(base_path=storage_base())
    instance = dg.DagsterInstance.get()
    job = defs.resolve_job_def(bootstrap_round_job.name)
    run_config = _run_config(args)
    for _ in range(args.rounds):
        done = store.rounds("filtered_tasks")
        key = round_key(round_number(done[-1]) + 1 if done else 1)
        instance.add_dynamic_partitions(bootstrap_rounds.name, [key])
        print(f"sipipeline: materializing {key} (DAGSTER_HOME={home}, storage={storage_base()})",
              flush=True)
        result = job.execute_in_process(partition_key=key, instance=instance,
                                        run_config=run_config, raise_on_error=False)
        if not result.success:
            failure = next((e for e in result.all_events if e.is_step_failure), None)
            cause = failure.step_failure_data.error.message.strip() if failure else "see the run"
            print(f"sipipeline: {key} failed (run {result.run_id}): {cause}", file=sys.stderr)
            return 1
        pool = store.read("filtered_tasks", key)
        added = int((pool["round"] == round_number(key)).sum())
        print(f"sipipeline: {key} done (run {result.run_id}): {added} new tasks, "
              f"pool {len(pool)} tasks", flush=True)
        report = store.local_dir(f"reports/{key}") / "report.html"
        if report.is_file():
            print(f"sipipeline: report {report}", flush=True)
    print("sipipeline: see the rounds, lineage and metadata with `make ui` (dagster dev)")
    return 0


def open_ui(args: argparse.Namespace) -> int:
    """`dagster dev` on the instance `sipipeline run` uses, so its rounds show up."""
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
    run.add_argument("--log-level", default="INFO",
                     choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="console log level")
    run.set_defaults(handler=run_rounds)
    ui = sub.add_parser("ui", help="start the Dagster UI (dagster dev) on the same instance")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(handler=open_ui)
    add_export_parser(sub)
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
