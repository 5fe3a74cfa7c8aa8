"""`sipipeline trace ID`: one task, candidate or instance, from the text that produced it on."""

from __future__ import annotations

import argparse
import json
import sys

from sipipeline.paths import add_storage_option


def add_trace_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `trace` subcommand (handler in `args.handler`)."""
    parser = subparsers.add_parser(
        "trace", help="where a task, candidate or instance came from and what became of it",
        description="Show a record's round, the request it came from (prompt and raw "
                    "completion from the response journal, finish reason, tokens, cost), its "
                    "in-context tasks, every filter decision with scores, its classification "
                    "answer, its instances with drop reasons, and the later rounds that used "
                    "it in context.")
    parser.add_argument("id", help="a task id (mi-…, seed_task_…), candidate id (gc-…) or "
                                   "instance id (in-…)")
    parser.add_argument("--json", action="store_true", help="print the trace as JSON")
    add_storage_option(parser)
    parser.set_defaults(handler=handle_trace)


def handle_trace(args: argparse.Namespace) -> int:
    """Print the trace; 1 when no round table holds the id."""
    from sipipeline.defs.partitions import round_number
    from sipipeline.defs.storage import RoundStore
    from sipipeline.model.journal_reader import read_samples
    from sipipeline.paths import storage_base
    from sipipeline.reporting.trace import (
        RecordNotFoundError,
        TraceSources,
        trace_record,
        trace_text,
    )

    store = RoundStore(base_path=storage_base(args.storage))
    journal = store.journal_path()
    keys = sorted(set(store.rounds("generated_instructions")) | set(store.rounds("seed_pool")),
                  key=round_number)
    sources = TraceSources(
        round_keys=keys,
        read_table=lambda asset, key: store.read(asset, key) if store.exists(asset, key)
        else None,
        read_journal=lambda wanted: read_samples(journal, wanted))
    try:
        trace = trace_record(args.id, sources)
    except RecordNotFoundError as error:
        print(f"sipipeline trace: {error} (rounds searched: {', '.join(keys) or 'none'})",
              file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(trace, indent=2, ensure_ascii=False, default=str))
    else:
        sys.stdout.write(trace_text(trace))
    return 0
