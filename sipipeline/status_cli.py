"""`sipipeline status`: rounds done and failed, pool, spend, staleness, automation — one screen."""

from __future__ import annotations

import argparse
import json
import sys

from sipipeline.paths import add_storage_option


def add_status_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `status` subcommand (handler in `args.handler`)."""
    parser = subparsers.add_parser(
        "status", help="rounds done and failed, pool size, tasks added, spend, what is stale, "
                       "whether the sensor and schedule are on",
        description="The state of the rounds on the instance `sipipeline run` and `sipipeline "
                    "ui` use (DAGSTER_HOME, else ./.dagster_home).")
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    add_storage_option(parser)
    parser.set_defaults(handler=handle_status)


def handle_status(args: argparse.Namespace) -> int:
    import os
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)

    from sipipeline.defs.status import collect_status, status_text
    from sipipeline.defs.storage import RoundStore
    from sipipeline.paths import dagster_home, storage_base

    home = dagster_home()
    if not home.is_dir():
        print(f"sipipeline status: no Dagster instance at {home} yet: no round has run "
              "(`sipipeline run` starts round 1)")
        return 0
    os.environ["DAGSTER_HOME"] = str(home)
    store = RoundStore(base_path=storage_base(args.storage))
    try:
        from sipipeline.definitions import defs
    except Exception as error:  # the code location must load for staleness; the rest need not
        print(f"sipipeline status: staleness unavailable, the definitions did not load "
              f"({type(error).__name__}: {error})", file=sys.stderr)
        defs = None
    with dg.DagsterInstance.get() as instance:
        status = collect_status(instance, store, defs)
    if args.json:
        print(json.dumps(status.as_dict(), indent=2, default=str))
    else:
        sys.stdout.write(status_text(status))
    return 0
