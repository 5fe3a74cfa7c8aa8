"""`sipipeline batches [--cancel]`: the live batches of the journal, and cancelling them.

Listing refreshes each live batch's state from the endpoint and shows its request counts and
its cost: what its output has cost so far (batch price), or, while it runs, at most what it
can cost. Batches are only ever cancelled here, on request: a run that stops leaves them
running on purpose, so that a later run collects their answers instead of paying again.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sipipeline.model.pricing import TokenPrice, cost_usd, estimate_prompt_tokens
from sipipeline.paths import add_storage_option


def add_batches_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `batches` subcommand (handler in `args.handler`)."""
    parser = subparsers.add_parser(
        "batches", help="list the live Batch API batches (state, counts, cost); --cancel them",
        description="List the batches sipipeline has sent that have not been collected yet, "
                    "with their state, request counts and cost.")
    parser.add_argument("--cancel", action="store_true",
                        help="cancel every live batch (their finished lines are still "
                             "collected by the next run)")
    add_storage_option(parser)
    parser.set_defaults(handler=handle_batches)


def handle_batches(args: argparse.Namespace) -> int:
    """List (and with --cancel, cancel) live batches; 0 on success, 1 on an endpoint error."""
    from sipipeline.defs.resources import llm_resource_from_env
    from sipipeline.defs.storage import RoundStore
    from sipipeline.model.batch import refresh_batch
    from sipipeline.model.batch_api import BatchApi, BatchApiError
    from sipipeline.model.batch_lines import half_price
    from sipipeline.model.batch_manifest import BatchManifest, Phase
    from sipipeline.model.types import ModelAccessError
    from sipipeline.paths import storage_base

    journal = RoundStore(base_path=storage_base(args.storage)).local_dir(
        "journal") / "llm_journal.sqlite"
    if not journal.is_file():
        print("sipipeline batches: no journal yet, so no batches")
        return 0
    manifest = BatchManifest(str(journal))
    try:
        live = manifest.batches(live_only=True)
        if not live:
            print("sipipeline batches: no live batches")
            return 0
        try:
            with llm_resource_from_env().process_config_and_initialize_cm() as llm:
                config = llm.client_config(str(journal))
            api = BatchApi(config)
            price = half_price(config.price)
            for row in live:
                if row.phase == Phase.SUBMITTED:
                    refresh_batch(api, manifest, row)
                    if args.cancel and row.state not in ("completed", "expired", "failed",
                                                         "cancelled"):
                        row.state = str(api.cancel(row.batch_id).get("status") or "cancelling")
                        manifest.update(row.local_id, state=row.state)
        except (BatchApiError, ModelAccessError) as error:
            print(f"sipipeline batches: {error}", file=sys.stderr)
            return 1
        print(f"{'batch':<24} {'step':<24} {'round':<10} {'state':<12} "
              f"{'done/total':>11} {'failed':>7}  cost")
        for row in live:
            lines = manifest.lines(row.local_id)
            total = row.counts.get("total", len(lines))
            done = f"{row.counts.get('completed', 0)}/{total}"
            print(f"{row.batch_id or row.local_id[:12]:<24} {row.purpose:<24} "
                  f"{row.partition_key or '-':<10} {row.state or row.phase.value:<12} "
                  f"{done:>11} {row.counts.get('failed', 0):>7}  "
                  f"<= ${_worst_cost(price, [line.line for line in lines]):.4f}")
        if args.cancel:
            print("sipipeline batches: cancel requested; the next run collects what they "
                  "finished and sends the rest again")
        return 0
    finally:
        manifest.close()


def _worst_cost(price: TokenPrice | None, lines: list[str]) -> float:
    """At most what the request lines can cost at the batch price."""
    total = 0.0
    for raw in lines:
        body: dict[str, Any] = json.loads(raw).get("body") or {}
        prompt = body.get("prompt") or json.dumps(body.get("messages") or "")
        completion = int(body.get("max_tokens") or 0) * int(body.get("n") or 1)
        total += cost_usd(price, estimate_prompt_tokens(str(prompt)), completion)
    return total
