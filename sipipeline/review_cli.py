"""`sipipeline review`: hand a round's review set to people in Label Studio and bring their
answers back as the `human_review` asset.

`review export --out DIR` writes the Label Studio task-import JSON and labeling config; the
records are the judge's sample when the round has a `quality_review` (so people and judge
answer about the same records and their agreement can be measured), else a fresh sample drawn
the same way. `review import FILE` materializes `human_review` for every round in the export.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sipipeline.method.review import DEFAULT_SAMPLE_SIZE
from sipipeline.paths import add_storage_option


def add_review_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `review export` and `review import` (handler in `args.handler`)."""
    parser = subparsers.add_parser(
        "review", help="human quality review with Label Studio (export a review set, import "
                       "the annotations)")
    actions = parser.add_subparsers(dest="review_command", required=True)
    export = actions.add_parser(
        "export", help="write a review set as Label Studio tasks plus its labeling config")
    export.add_argument("--out", required=True, help="output directory")
    export.add_argument("--round", dest="round_key",
                        help="round to review, e.g. round_002 (default: the latest)")
    export.add_argument("--sample-size", type=int, default=None,
                        help=f"records to sample when the round has no quality_review "
                             f"(default {DEFAULT_SAMPLE_SIZE}); given, it always resamples")
    export.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    add_storage_option(export)
    export.set_defaults(handler=handle_export)
    imported = actions.add_parser(
        "import", help="read a Label Studio JSON export into the human_review asset")
    imported.add_argument("file", help="the JSON export (Label Studio: Export → JSON)")
    imported.set_defaults(handler=handle_import)


def handle_export(args: argparse.Namespace) -> int:
    from sipipeline.defs.partitions import round_number
    from sipipeline.defs.storage import MissingRoundError, RoundStore
    from sipipeline.method.review import review_sample
    from sipipeline.paths import storage_base
    from sipipeline.reporting.label_studio import write_review_set

    if args.sample_size is not None and args.sample_size < 1:
        print("sipipeline review export: --sample-size must be at least 1", file=sys.stderr)
        return 2
    store = RoundStore(base_path=storage_base(args.storage))
    try:
        key = args.round_key or store.latest("filtered_tasks")[0]
        number = round_number(key)
        if args.sample_size is None and store.exists("quality_review", key):
            records, source = store.read("quality_review", key), "the judge's sample"
        else:
            size = args.sample_size or DEFAULT_SAMPLE_SIZE
            records = review_sample(store.read("filtered_tasks", key), number, size, args.seed)
            source = f"a new sample (size {size}, seed {args.seed})"
    except (MissingRoundError, ValueError) as error:
        print(f"sipipeline review export: {error}", file=sys.stderr)
        return 1
    written = write_review_set(records, args.out)
    print(f"review set of {key}: {len(records)} records, {source}")
    for name, path in written.items():
        print(f"{name}: {path}")
    print("Label Studio: create a project with the labeling config, import the tasks, annotate, "
          "then Export → JSON and run `sipipeline review import <file>`")
    return 0


def handle_import(args: argparse.Namespace) -> int:
    from sipipeline.cli import _ensure_dagster_home

    _ensure_dagster_home()
    import dagster as dg

    from sipipeline.definitions import defs
    from sipipeline.defs.partitions import bootstrap_rounds, round_key
    from sipipeline.reporting.label_studio import (
        LabelStudioExportError,
        human_records,
        read_export,
    )

    path = Path(args.file).resolve()
    try:
        records = human_records(read_export(path))
    except (OSError, LabelStudioExportError) as error:
        print(f"sipipeline review import: {error}", file=sys.stderr)
        return 1
    if records.empty:
        print(f"sipipeline review import: {path} has no submitted annotation", file=sys.stderr)
        return 1
    instance = dg.DagsterInstance.get()
    job = defs.resolve_implicit_global_asset_job_def()
    status = 0
    for number in sorted({int(r) for r in records["round"]}):
        key = round_key(number)
        instance.add_dynamic_partitions(bootstrap_rounds.name, [key])
        result = job.execute_in_process(
            asset_selection=[dg.AssetKey("human_review")], partition_key=key, instance=instance,
            run_config={"ops": {"human_review": {"config": {"export_file": str(path)}}}},
            raise_on_error=False)
        if not result.success:
            print(f"sipipeline review import: human_review of {key} failed (run "
                  f"{result.run_id})", file=sys.stderr)
            status = 1
            continue
        [event] = result.get_asset_materialization_events()
        metadata = event.materialization.metadata
        print(f"human_review of {key} (run {result.run_id}):\n{metadata['quality'].value}")
        if "agreement" in metadata:
            print(f"\nAgreement with the judge:\n{metadata['agreement'].value}")
    return status
