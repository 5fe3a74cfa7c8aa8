"""Asset checks that guard each round's data before it flows on.

Each rule is a plain function over DataFrames that returns a `CheckOutcome` (a
`(passed, details)` tuple), so it can be tested and reused without Dagster. The Dagster part is
three thin `@dg.multi_asset_check` wrappers, one per checked asset, so a check step loads its
asset's Parquet once.

How a check sees partitions: a check without `partitions_def` on a partitioned asset receives
*every* partition as input (and fails to load rounds that are not materialized yet). The specs
here therefore carry `partitions_def=bootstrap_rounds` (a preview feature in Dagster 1.13): in a
round run the check step receives exactly the round being materialized, its
`context.partition_key` is that round, and the result is recorded against that partition in the
UI. The checks of `filtered_tasks` and `instances` are blocking: an ERROR stops the rest of the
run, so bad data never reaches `filtered_tasks`/`dataset_stats`, the run fails, and the
round's last step (`round_completion`, which hands the pool on) never runs. The parse-failure
check only warns (WARN severity never stops a run) but is declared blocking too, so the rest of
the round waits for it: a check that crashes fails the round before it is marked done.
"""

import warnings

import dagster as dg
import pandas as pd
from pydantic import Field

from sipipeline.defs.metadata import SIMILARITY_THRESHOLD, metadata_from
from sipipeline.defs.partitions import bootstrap_rounds, round_number
from sipipeline.method.check_rules import (
    DEFAULT_MAX_PARSE_FAILURE_SHARE,
    DEFAULT_ROUGE_PAIR_BUDGET,
    DEFAULT_ROUGE_SAMPLE_SIZE,
    CheckOutcome,
    check_accepted_tasks_have_instances,
    check_input_differs_from_output,
    check_no_duplicate_instructions,
    check_no_empty_outputs,
    check_parse_failure_share,
    check_pool_schema,
    check_rouge_l_novelty,
)

# --------------------------------------------------------------------------- Dagster wrappers
FILTERED_TASKS_CHECKS = ("no_duplicate_instructions", "rouge_l_below_threshold",
                         "pool_schema", "accepted_tasks_have_instances")
INSTANCES_CHECKS = ("no_empty_outputs", "input_differs_from_output")
GENERATED_CHECKS = ("parse_failure_share",)


def _spec(name: str, asset: str, description: str, blocking: bool,
          additional_deps: tuple[str, ...] = ()) -> dg.AssetCheckSpec:
    with warnings.catch_warnings():  # partitioned checks are a preview feature in 1.13
        warnings.simplefilter("ignore")
        return dg.AssetCheckSpec(name, asset=asset, description=description, blocking=blocking,
                                 partitions_def=bootstrap_rounds,
                                 additional_deps=list(additional_deps))


def _result(name: str, asset: str, outcome: CheckOutcome,
            severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
            ) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=name, asset_key=asset, passed=bool(outcome.passed),
                               severity=severity, metadata=metadata_from(outcome.details))


class FilteredTasksCheckConfig(dg.Config):
    rouge_sample_size: int = Field(
        default=DEFAULT_ROUGE_SAMPLE_SIZE, ge=0,
        description="How many of the round's accepted tasks get their ROUGE-L recomputed.")
    rouge_pair_budget: int = Field(
        default=DEFAULT_ROUGE_PAIR_BUDGET, ge=0,
        description="At most this many rouge-score pairs for the sampled tasks against the pool "
                    "before them (every task's recorded neighbours are always rescored).")
    random_seed: int = Field(default=0, description="Seeds the choice of the sample.")


class GeneratedInstructionsCheckConfig(dg.Config):
    max_parse_failure_share: float = Field(
        default=DEFAULT_MAX_PARSE_FAILURE_SHARE, ge=0.0, le=1.0,
        description="Warn when more candidates than this share were unparseable or truncated.")


def stored_similarity_threshold(instance: dg.DagsterInstance, round_key: str) -> float:
    """The novelty threshold the round's generation step used, as it recorded it.

    Read from the latest materialization of `generated_instructions[round_key]`, so the check
    follows what the round did, whichever way it was configured.
    """
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("generated_instructions"),
                              asset_partitions=[round_key]), limit=1).records
    if not records or records[0].asset_materialization is None:
        raise dg.Failure(f"generated_instructions[{round_key}] has no materialization: the "
                         "novelty threshold of the round is unknown", allow_retries=False)
    entry = records[0].asset_materialization.metadata.get(SIMILARITY_THRESHOLD)
    if entry is None:
        raise dg.Failure(f"generated_instructions[{round_key}] did not record its novelty "
                         f"threshold ({SIMILARITY_THRESHOLD}); re-materialize it",
                         allow_retries=False)
    return float(entry.value)


@dg.multi_asset_check(
    specs=[
        _spec("no_duplicate_instructions", "filtered_tasks",
              "No two pool tasks share an instruction after case, punctuation and space "
              "folding.", blocking=True),
        _spec("rouge_l_below_threshold", "filtered_tasks",
              "A sample of this round's accepted tasks, rescored with rouge-score against the "
              "pool before them, stays at or below the novelty threshold.", blocking=True,
              additional_deps=("generated_instructions",)),
        _spec("pool_schema", "filtered_tasks",
              "Every stored column is present and typed as declared; task ids are set and "
              "unique.", blocking=True),
        _spec("accepted_tasks_have_instances", "filtered_tasks",
              "Every machine task in the pool has at least one valid instance.", blocking=True),
    ],
    # generated_instructions: the texts of recorded ROUGE-L neighbours that are not in the pool.
    ins={"filtered_tasks": dg.AssetIn("filtered_tasks"),
         "generated_instructions": dg.AssetIn("generated_instructions")},
    description="Guards the pool handed to the next round.",
)
def filtered_tasks_checks(context: dg.AssetCheckExecutionContext,
                          config: FilteredTasksCheckConfig,
                          filtered_tasks: pd.DataFrame, generated_instructions: pd.DataFrame):
    number = round_number(context.partition_key)
    threshold = stored_similarity_threshold(context.instance, context.partition_key)
    asset = "filtered_tasks"
    yield _result("no_duplicate_instructions", asset,
                  check_no_duplicate_instructions(filtered_tasks))
    passed_filter = generated_instructions.dropna(subset=["task_id"])
    yield _result("rouge_l_below_threshold", asset, check_rouge_l_novelty(
        filtered_tasks, number, threshold, config.rouge_sample_size, config.random_seed,
        config.rouge_pair_budget,
        other_texts=dict(zip(passed_filter["task_id"].astype(str),
                             passed_filter["instruction"].astype(str), strict=True))))
    # Earlier rows passed their own round's checks: types and instances of this round's rows.
    yield _result("pool_schema", asset, check_pool_schema(filtered_tasks, round_number=number))
    yield _result("accepted_tasks_have_instances", asset,
                  check_accepted_tasks_have_instances(filtered_tasks, round_number=number))


@dg.multi_asset_check(
    specs=[
        _spec("no_empty_outputs", "instances", "No kept instance has an empty output.",
              blocking=True),
        _spec("input_differs_from_output", "instances",
              "No kept instance has its input as its output.", blocking=True),
    ],
    ins={"instances": dg.AssetIn("instances")},
    description="Guards the instances that `filtered_tasks` puts into the pool.",
)
def instances_checks(instances: pd.DataFrame):
    yield _result("no_empty_outputs", "instances", check_no_empty_outputs(instances))
    yield _result("input_differs_from_output", "instances",
                  check_input_differs_from_output(instances))


@dg.multi_asset_check(
    specs=[
        _spec("parse_failure_share", "generated_instructions",
              "Warns when too many candidates were unparseable or cut by the token limit "
              "(a model or prompt problem).", blocking=True),
    ],
    ins={"generated_instructions": dg.AssetIn("generated_instructions")},
    description="Watches the model's answers for format problems.",
)
def generated_instructions_checks(config: GeneratedInstructionsCheckConfig,
                                  generated_instructions: pd.DataFrame):
    yield _result("parse_failure_share", "generated_instructions",
                  check_parse_failure_share(generated_instructions,
                                            config.max_parse_failure_share),
                  severity=dg.AssetCheckSeverity.WARN)


ROUND_CHECKS = [filtered_tasks_checks, instances_checks, generated_instructions_checks]
