"""`sipipeline export`: write the fine-tuning files of the latest materialized round."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sipipeline.paths import add_storage_option
from sipipeline.reporting.formats import format_choices


def add_export_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `export` subcommand (handler in `args.handler`)."""
    parser = subparsers.add_parser(
        "export", help="write fine-tuning files (JSONL, prompt/completion, Alpaca, OpenAI chat, "
                       "Parquet) from the latest round",
        description="Export the dataset of the latest materialized round (its filtered_tasks "
                    "Parquet) as fine-tuning files with a dataset card.")
    parser.add_argument("--format", dest="formats", action="append", choices=format_choices(),
                        help="format to write; repeat for several (default: all)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--include-seeds", action="store_true",
                        help="also export the human seed tasks")
    parser.add_argument("--validation-fraction", type=float, default=0.05,
                        help="share of tasks in the validation split (default 0.05)")
    parser.add_argument("--seed", type=int, default=42,
                        help="seed of the split, the shuffles and the template choice")
    add_storage_option(parser, "storage base; its newest round is exported (default: "
                               "$SIPIPELINE_STORAGE, else $DAGSTER_HOME/sipipeline, whose latest "
                               "done round is exported)")
    parser.set_defaults(handler=handle_export)


def handle_export(args: argparse.Namespace) -> int:
    """Run an export from parsed arguments; 0 on success, 1 when there is nothing to export."""
    from sipipeline.defs.storage import MissingRoundError, RoundStore, StaleRoundError
    from sipipeline.paths import storage_base
    from sipipeline.reporting.exports import export_dataset

    if not 0 <= args.validation_fraction < 1:
        print("sipipeline export: --validation-fraction must be in [0, 1)", file=sys.stderr)
        return 2
    store = RoundStore(base_path=storage_base(args.storage))
    try:
        done = None if args.storage else _done_round_keys()
        if done is None:  # another store, or no instance to ask: the newest stored round
            round_key, pool = store.latest("filtered_tasks")
        elif not done:
            raise MissingRoundError("no round is done yet (a round is done when its whole run "
                                    "succeeded): nothing to export")
        else:
            round_key, pool = done[-1], store.read("filtered_tasks", done[-1])
    except (MissingRoundError, StaleRoundError) as error:
        print(f"sipipeline export: {error}", file=sys.stderr)
        return 1
    formats = args.formats or ["all"]
    written = export_dataset(pool, args.out, formats=formats, include_seeds=args.include_seeds,
                             validation_fraction=args.validation_fraction, seed=args.seed,
                             card_info={"source": f"filtered_tasks/{round_key}.parquet"})
    for fmt, paths in written.items():
        for path in paths:
            print(f"{fmt}: {path}")
    return 0


def _done_round_keys() -> list[str] | None:
    """Done rounds of the instance in $DAGSTER_HOME (never a failed one); None without one."""
    from sipipeline.paths import dagster_home

    if not (dagster_home() / "dagster.yaml").is_file():
        return None
    import os

    import dagster as dg

    from sipipeline.defs.automation import done_rounds
    from sipipeline.defs.partitions import round_key

    os.environ["DAGSTER_HOME"] = str(dagster_home())
    with dg.DagsterInstance.get() as instance:
        return [round_key(number) for number in done_rounds(instance)]


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (`python -m sipipeline.export_cli …`), same options as the subcommand."""
    parser = argparse.ArgumentParser(prog="sipipeline")
    add_export_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["export", *(sys.argv[1:] if argv is None else argv)])
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
