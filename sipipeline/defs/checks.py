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

import random
import re
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import dagster as dg
import pandas as pd
import pyarrow as pa
from pydantic import Field
from rouge_score import rouge_scorer, tokenizers

from sipipeline.defs.config import GenerationConfig
from sipipeline.defs.partitions import bootstrap_rounds, round_number
from sipipeline.method.schema import POOL_SCHEMA, is_missing

PARSE_FAILURE_REASONS = ("unparseable", "truncated")
"""Reject reasons of `generated_instructions` that mean the model's answer could not be used."""

DEFAULT_MAX_PARSE_FAILURE_SHARE = 0.25
DEFAULT_ROUGE_SAMPLE_SIZE = 20
MAX_EXAMPLES = 5
REQUIRED_NON_NULL = ("task_id", "instruction", "origin", "round")


class CheckOutcome(NamedTuple):
    """What a rule found: whether it passed, and details to show (JSON-friendly values)."""

    passed: bool
    details: dict[str, Any]


# --------------------------------------------------------------------------- filtered_tasks
def normalize_instruction(text: str) -> str:
    """Compatibility-fold, case-fold, drop punctuation and collapse whitespace.

    Two instructions that differ only in case, punctuation or spacing are the same task.
    """
    folded = unicodedata.normalize("NFKC", text or "").casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", folded).split())


def check_no_duplicate_instructions(pool: pd.DataFrame) -> CheckOutcome:
    """No two pool tasks have the same instruction after `normalize_instruction`.

    ROUGE-L cannot catch every copy (text with no a–z/0–9 token scores 0 against itself).
    """
    groups: dict[str, list[str]] = {}
    for task_id, instruction in zip(pool["task_id"], pool["instruction"], strict=True):
        groups.setdefault(normalize_instruction(str(instruction)), []).append(str(task_id))
    duplicates = {text: ids for text, ids in groups.items() if len(ids) > 1}
    examples = [{"instruction": text, "task_ids": ids}
                for text, ids in list(duplicates.items())[:MAX_EXAMPLES]]
    return CheckOutcome(not duplicates, {
        "tasks": len(pool),
        "duplicate_groups": len(duplicates),
        "duplicate_tasks": sum(len(ids) for ids in duplicates.values()),
        "examples": examples,
    })


class _RougeReference:
    """rouge-score's own tokenizer and LCS scorer, independent of `sipipeline.similarity`."""

    def __init__(self) -> None:
        self._tokenizer = tokenizers.DefaultTokenizer(use_stemmer=False)

    def tokens(self, text: str) -> list[str]:
        return self._tokenizer.tokenize(text)

    @staticmethod
    def fmeasure(target: Sequence[str], prediction: Sequence[str]) -> float:
        """As the reference scores a candidate: `scorer.score(candidate, pool_item)`."""
        return float(rouge_scorer._score_lcs(target, prediction).fmeasure)


def _cannot_beat(length_a: int, length_b: int, best: float) -> bool:
    """True when two token lists of these lengths cannot score above `best`.

    The F-measure is at most 2·min/(m+n) (the LCS is at most the shorter list); the margin keeps
    this pruning on the safe side of float rounding, so the maximum stays exact.
    """
    if length_a == 0 or length_b == 0:
        return True
    return 2 * min(length_a, length_b) / (length_a + length_b) < best - 1e-9


def check_rouge_l_novelty(pool: pd.DataFrame, round_number: int, threshold: float,
                          sample_size: int = DEFAULT_ROUGE_SAMPLE_SIZE,
                          random_seed: int = 0) -> CheckOutcome:
    """Recompute, on a sample of this round's accepted tasks, ROUGE-L to the pool before them.

    The pool keeps tasks in acceptance order, so "the pool before" a task is every row above it.
    Each sampled task must score ≤ `threshold` against all of them (rouge-score itself computes
    the scores), and the recomputed maximum must not exceed the `max_rouge_l` stored with the
    task: the filter compared it with a superset of those rows.
    """
    instructions = [str(text) for text in pool["instruction"]]
    is_new = ((pool["origin"] == "machine") & (pool["round"] == round_number)).tolist()
    positions = [index for index, new in enumerate(is_new) if new]
    sampled = sorted(random.Random(random_seed).sample(positions,
                                                       min(sample_size, len(positions))))
    reference = _RougeReference()
    tokens = [reference.tokens(text) for text in instructions[:max(sampled, default=-1) + 1]]
    stored = pool["max_rouge_l"].tolist()
    above, inconsistent, scored_pairs, highest = [], [], 0, 0.0
    for position in sampled:
        mine, best, nearest = tokens[position], 0.0, None
        for earlier in range(position):
            if _cannot_beat(len(mine), len(tokens[earlier]), best):
                continue
            score = reference.fmeasure(target=mine, prediction=tokens[earlier])
            scored_pairs += 1
            if score > best:
                best, nearest = score, earlier
        highest = max(highest, best)
        task = {"task_id": str(pool["task_id"].iloc[position]),
                "instruction": instructions[position], "recomputed_max": best,
                "nearest": instructions[nearest] if nearest is not None else None}
        if best > threshold:
            above.append(task)
        recorded = stored[position]
        if recorded is not None and not pd.isna(recorded) and best > float(recorded) + 1e-12:
            inconsistent.append({**task, "stored_max_rouge_l": float(recorded)})
    return CheckOutcome(not above and not inconsistent, {
        "threshold": threshold,
        "accepted_this_round": len(positions),
        "sampled": len(sampled),
        "scored_pairs": scored_pairs,
        "highest_recomputed": highest,
        "above_threshold": len(above),
        "stored_score_too_low": len(inconsistent),
        "examples": (above + inconsistent)[:MAX_EXAMPLES],
    })


def check_pool_schema(pool: pd.DataFrame, schema: pa.Schema = POOL_SCHEMA) -> CheckOutcome:
    """Every stored column is present and converts to its declared Arrow type; keys are set."""
    missing = [name for name in schema.names if name not in pool.columns]
    mistyped: dict[str, str] = {}
    for field in schema:
        if field.name in missing:
            continue
        values = [None if is_missing(value) else value for value in pool[field.name].tolist()]
        try:
            pa.array(values, type=field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as error:
            mistyped[field.name] = f"not {field.type}: {str(error)[:160]}"
    null_keys = {name: int(pool[name].isna().sum()) for name in REQUIRED_NON_NULL
                 if name not in missing and int(pool[name].isna().sum())}
    duplicate_ids = (int(pool["task_id"].duplicated().sum())
                     if "task_id" in pool.columns else 0)
    passed = not (missing or mistyped or null_keys or duplicate_ids)
    return CheckOutcome(passed, {
        "columns": list(pool.columns),
        "missing_columns": missing,
        "extra_columns": [name for name in pool.columns if name not in schema.names],
        "mistyped_columns": mistyped,
        "null_key_values": null_keys,
        "duplicate_task_ids": duplicate_ids,
    })


def _valid_instance(instance: object) -> bool:
    if not isinstance(instance, dict):
        return False
    task_input = str(instance.get("input") or "").strip()
    task_output = str(instance.get("output") or "").strip()
    return bool(task_output) and task_input != task_output


def check_accepted_tasks_have_instances(pool: pd.DataFrame) -> CheckOutcome:
    """Every machine-generated task in the pool has at least one valid instance."""
    machine = pool[pool["origin"] == "machine"]
    lacking = []
    for task_id, instruction, task_instances in zip(
            machine["task_id"], machine["instruction"], machine["instances"], strict=True):
        valid = sum(_valid_instance(i) for i in _as_list(task_instances))
        if valid == 0:
            lacking.append({"task_id": str(task_id), "instruction": str(instruction)})
    return CheckOutcome(not lacking, {
        "machine_tasks": len(machine),
        "without_valid_instance": len(lacking),
        "examples": lacking[:MAX_EXAMPLES],
    })


def _as_list(value: object) -> list:
    if is_missing(value):
        return []
    return list(value)  # type: ignore[call-overload]


# --------------------------------------------------------------------------- instances
def _kept(instances: pd.DataFrame) -> pd.DataFrame:
    return instances[instances["status"] == "kept"]


def check_no_empty_outputs(instances: pd.DataFrame) -> CheckOutcome:
    """No kept instance has an empty (or whitespace-only) output."""
    kept = _kept(instances)
    empty = kept[kept["output"].fillna("").astype(str).str.strip() == ""]
    return CheckOutcome(empty.empty, {
        "kept_instances": len(kept),
        "empty_outputs": len(empty),
        "examples": _instance_examples(empty),
    })


def check_input_differs_from_output(instances: pd.DataFrame) -> CheckOutcome:
    """No kept instance repeats its input as its output."""
    kept = _kept(instances)
    inputs = kept["input"].fillna("").astype(str).str.strip()
    outputs = kept["output"].fillna("").astype(str).str.strip()
    same = kept[(inputs == outputs) & (inputs != "")]
    return CheckOutcome(same.empty, {
        "kept_instances": len(kept),
        "input_equals_output": len(same),
        "examples": _instance_examples(same),
    })


def _instance_examples(rows: pd.DataFrame) -> list[dict[str, str]]:
    return [{"instance_id": str(r.instance_id), "task_id": str(r.task_id),
             "input": str(r.input)[:200], "output": str(r.output)[:200]}
            for r in rows.head(MAX_EXAMPLES).itertuples()]


# --------------------------------------------------------------------------- generated
def check_parse_failure_share(generated: pd.DataFrame, max_share: float,
                              reasons: Iterable[str] = PARSE_FAILURE_REASONS) -> CheckOutcome:
    """The share of candidates rejected because the answer could not be parsed stays low.

    A high share points at the model or the prompt (wrong format, token limit too small), not
    at the data, hence a warning rather than a stop.
    """
    reasons = tuple(reasons)
    total = len(generated)
    by_reason = {reason: int((generated["reject_reason"] == reason).sum()) for reason in reasons}
    failed = sum(by_reason.values())
    share = failed / total if total else 0.0
    return CheckOutcome(share <= max_share, {
        "candidates": total,
        "parse_failures": failed,
        "by_reason": by_reason,
        "share": share,
        "max_share": max_share,
    })


# --------------------------------------------------------------------------- Dagster wrappers
FILTERED_TASKS_CHECKS = ("no_duplicate_instructions", "rouge_l_below_threshold",
                         "pool_schema", "accepted_tasks_have_instances")
INSTANCES_CHECKS = ("no_empty_outputs", "input_differs_from_output")
GENERATED_CHECKS = ("parse_failure_share",)


def _spec(name: str, asset: str, description: str, blocking: bool) -> dg.AssetCheckSpec:
    with warnings.catch_warnings():  # partitioned checks are a preview feature in 1.13
        warnings.simplefilter("ignore")
        return dg.AssetCheckSpec(name, asset=asset, description=description, blocking=blocking,
                                 partitions_def=bootstrap_rounds)


def _result(name: str, asset: str, outcome: CheckOutcome,
            severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
            ) -> dg.AssetCheckResult:
    metadata: dict[str, Any] = {}
    for key, value in outcome.details.items():
        if isinstance(value, bool):
            metadata[key] = dg.MetadataValue.bool(value)
        elif isinstance(value, int):
            metadata[key] = dg.MetadataValue.int(value)
        elif isinstance(value, float):
            metadata[key] = dg.MetadataValue.float(value)
        elif isinstance(value, str):
            metadata[key] = dg.MetadataValue.text(value)
        else:
            metadata[key] = dg.MetadataValue.json(value)
    return dg.AssetCheckResult(check_name=name, asset_key=asset, passed=bool(outcome.passed),
                               severity=severity, metadata=metadata)


class FilteredTasksCheckConfig(dg.Config):
    rouge_sample_size: int = Field(
        default=DEFAULT_ROUGE_SAMPLE_SIZE, ge=0,
        description="How many of the round's accepted tasks get their ROUGE-L recomputed.")
    random_seed: int = Field(default=0, description="Seeds the choice of the sample.")


class GeneratedInstructionsCheckConfig(dg.Config):
    max_parse_failure_share: float = Field(
        default=DEFAULT_MAX_PARSE_FAILURE_SHARE, ge=0.0, le=1.0,
        description="Warn when more candidates than this share were unparseable or truncated.")


def similarity_threshold_of_run(run_config: dict) -> float:
    """The novelty threshold the run's generation step used (its default when not set)."""
    op_config = ((run_config or {}).get("ops") or {}).get("generated_instructions") or {}
    value = (op_config.get("config") or {}).get("similarity_threshold")
    if value is None:
        return float(GenerationConfig.model_fields["similarity_threshold"].default)
    return float(value)


@dg.multi_asset_check(
    specs=[
        _spec("no_duplicate_instructions", "filtered_tasks",
              "No two pool tasks share an instruction after case, punctuation and space "
              "folding.", blocking=True),
        _spec("rouge_l_below_threshold", "filtered_tasks",
              "A sample of this round's accepted tasks, rescored with rouge-score against the "
              "pool before them, stays at or below the novelty threshold.", blocking=True),
        _spec("pool_schema", "filtered_tasks",
              "Every stored column is present and typed as declared; task ids are set and "
              "unique.", blocking=True),
        _spec("accepted_tasks_have_instances", "filtered_tasks",
              "Every machine task in the pool has at least one valid instance.", blocking=True),
    ],
    ins={"filtered_tasks": dg.AssetIn("filtered_tasks")},
    description="Guards the pool handed to the next round.",
)
def filtered_tasks_checks(context: dg.AssetCheckExecutionContext,
                          config: FilteredTasksCheckConfig,
                          filtered_tasks: pd.DataFrame):
    number = round_number(context.partition_key)
    threshold = similarity_threshold_of_run(context.run.run_config)
    asset = "filtered_tasks"
    yield _result("no_duplicate_instructions", asset,
                  check_no_duplicate_instructions(filtered_tasks))
    yield _result("rouge_l_below_threshold", asset, check_rouge_l_novelty(
        filtered_tasks, number, threshold, config.rouge_sample_size, config.random_seed))
    yield _result("pool_schema", asset, check_pool_schema(filtered_tasks))
    yield _result("accepted_tasks_have_instances", asset,
                  check_accepted_tasks_have_instances(filtered_tasks))


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
