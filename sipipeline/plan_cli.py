"""`sipipeline plan`: what the next rounds are expected to cost, before anything is sent."""

from __future__ import annotations

import argparse
import sys

from sipipeline.model.plan import BASIS_JOURNAL, BASIS_PROMPTS
from sipipeline.paths import add_storage_option


def add_plan_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `plan` subcommand (handler in `args.handler`)."""
    parser = subparsers.add_parser(
        "plan", help="expected requests, tokens and USD of the next rounds (online and batch)",
        description="Estimate the next rounds' model use from the journal's usage of rounds "
                    "already run, else from the prompts' sizes and max_tokens; prints which.")
    parser.add_argument("--rounds", type=int, default=1, help="how many rounds (default 1)")
    parser.add_argument("--num-prompts", type=int, default=None,
                        help="generation requests per round (default: the round's default)")
    add_storage_option(parser)
    parser.set_defaults(handler=handle_plan)


def handle_plan(args: argparse.Namespace) -> int:
    import dagster as dg

    from sipipeline.defs.config import GenerationConfig, SeedPoolConfig
    from sipipeline.defs.cost_plan import estimate_rounds, journal_path
    from sipipeline.defs.partitions import round_number
    from sipipeline.defs.resources import llm_resource_from_env
    from sipipeline.defs.storage import RoundStore
    from sipipeline.method.seeds import load_seed_tasks
    from sipipeline.model.ledger import BudgetLedger
    from sipipeline.paths import storage_base

    if args.rounds < 1 or (args.num_prompts is not None and args.num_prompts < 1):
        print("sipipeline plan: --rounds and --num-prompts must be at least 1", file=sys.stderr)
        return 2
    num_prompts = args.num_prompts or GenerationConfig().num_prompts
    store = RoundStore(base_path=storage_base(args.storage))
    done = store.rounds("filtered_tasks")
    if done:
        pool = store.read("filtered_tasks", done[-1])
        first = round_number(done[-1]) + 1
    else:
        pool = load_seed_tasks(SeedPoolConfig().seed_file)
        first = 1
    # Built as Dagster builds it, so settings given as environment variables are resolved.
    with dg.build_resources({"llm": llm_resource_from_env()}) as resources:
        llm = resources.llm
    price = llm.token_price()
    journal = journal_path(store.local_dir("journal"))
    estimates = estimate_rounds(pool, first, args.rounds, num_prompts, journal,
                                llm.requests_per_call(), llm.prompts_per_call())
    name = llm.describe()["model"]
    price_text = (f"${price.prompt:g} / ${price.completion:g} per 1M prompt / completion "
                  "tokens" if price else "no price known (set the resource's price fields)")
    print(f"sipipeline plan: {args.rounds} round(s) from round {first}, {num_prompts} "
          f"generation prompts each; model {name}, {price_text}")
    header = (f"{'round':<10} {'step':<24} {'requests':>9} {'prompt tok':>11} "
              f"{'compl. tok':>11} {'online USD':>11} {'batch USD':>10}  from")
    print(header)
    total = [0, 0, 0, 0.0, 0.0]
    for estimate in estimates:
        key = f"round_{estimate.number:03d}"
        for step in estimate.steps:
            print(f"{key:<10} {step.purpose:<24} {step.requests:>9} {step.prompt_tokens:>11} "
                  f"{step.completion_tokens:>11} {step.cost_usd(price):>11.4f} "
                  f"{step.batch_cost_usd(price):>10.4f}  {step.basis}")
        row = [estimate.requests(), estimate.prompt_tokens(), estimate.completion_tokens(),
               estimate.cost_usd(price), estimate.batch_cost_usd(price)]
        print(f"{key:<10} {'round total':<24} {row[0]:>9} {row[1]:>11} {row[2]:>11} "
              f"{row[3]:>11.4f} {row[4]:>10.4f}")
        total = [a + b for a, b in zip(total, row, strict=True)]
    print(f"{'total':<10} {'':<24} {total[0]:>9} {total[1]:>11} {total[2]:>11} "
          f"{total[3]:>11.4f} {total[4]:>10.4f}")
    bases = {step.basis for estimate in estimates for step in estimate.steps}
    if bases == {BASIS_JOURNAL}:
        print("estimated from: the journal's token usage of the rounds already run")
    elif bases == {BASIS_PROMPTS}:
        print("estimated from: the prompts' sizes and max_tokens (no journaled rounds yet; "
              "completions at max_tokens, an upper bound)")
    else:
        print("estimated from: the journal's token usage where a step has been run, else the "
              "prompts' sizes and max_tokens")
    budget = llm.effective_budget_usd()
    if budget is not None:
        status = BudgetLedger(str(journal), budget).status()
        left = status.left_usd()
        fits = "fits" if total[3] <= left else "does NOT fit"
        print(f"budget: {status.describe()}; ${left:.4f} left, this plan {fits}")
    return 0
