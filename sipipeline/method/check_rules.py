"""The pure rules behind the asset checks: each a function over DataFrames returning a
`CheckOutcome` (passed, JSON-friendly details), testable and reusable without Dagster.

The ROUGE-L rule uses rouge-score itself, independent of `sipipeline.similarity`, so the fast
filter is checked against the reference it claims to match.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from sipipeline.method.schema import DUPLICATE_HASH, POOL_SCHEMA, is_missing
from sipipeline.method.vocabulary import (
    PARSE_FAILURE_REASONS,
    InstanceStatus,
    Origin,
    duplicate_hash,
    duplicate_key,
)

DEFAULT_MAX_PARSE_FAILURE_SHARE = 0.25
DEFAULT_ROUGE_SAMPLE_SIZE = 20
DEFAULT_ROUGE_PAIR_BUDGET = 20_000
MAX_EXAMPLES = 5
REQUIRED_NON_NULL = ("task_id", "instruction", "origin", "round")


class CheckOutcome(NamedTuple):
    """What a rule found: whether it passed, and details to show (JSON-friendly values)."""

    passed: bool
    details: dict[str, Any]


# --------------------------------------------------------------------------- filtered_tasks
def check_no_duplicate_instructions(pool: pd.DataFrame) -> CheckOutcome:
    """No two pool tasks have the same instruction after `duplicate_key`.

    ROUGE-L cannot catch every copy (text with no a–z/0–9 token scores 0 against itself).
    Rows are compared by their stored `duplicate_hash` (computed for rows without one); only
    rows whose hashes agree are compared by text, so the check costs numbers, not texts.
    """
    hashes = (pool[DUPLICATE_HASH].astype("Int64") if DUPLICATE_HASH in pool.columns
              else pd.Series(pd.NA, index=pool.index, dtype="Int64"))
    lacking = hashes.isna().to_numpy()
    if lacking.any():
        hashes = hashes.copy()
        hashes[lacking] = [duplicate_hash(str(text))
                           for text in pool["instruction"].to_numpy()[lacking]]
    same_hash = hashes.duplicated(keep=False).to_numpy()
    groups: dict[str, list[str]] = {}
    for task_id, instruction in zip(pool["task_id"].to_numpy()[same_hash],
                                    pool["instruction"].to_numpy()[same_hash], strict=True):
        groups.setdefault(duplicate_key(str(instruction)), []).append(str(task_id))
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
        from rouge_score import rouge_scorer, tokenizers  # the oracle, needed only here

        self._score_lcs = rouge_scorer._score_lcs
        self._tokenizer = tokenizers.DefaultTokenizer(use_stemmer=False)
        self._cache: dict[str, list[str]] = {}
        self._bags: dict[str, Counter[str]] = {}

    def tokens(self, text: str) -> list[str]:
        cached = self._cache.get(text)
        if cached is None:
            cached = self._cache[text] = self._tokenizer.tokenize(text)
        return cached

    def bag(self, text: str) -> Counter[str]:
        """The text's tokens with their counts."""
        cached = self._bags.get(text)
        if cached is None:
            cached = self._bags[text] = Counter(self.tokens(text))
        return cached

    def fmeasure(self, target: Sequence[str], prediction: Sequence[str]) -> float:
        """As the reference scores a candidate: `scorer.score(candidate, pool_item)`."""
        return float(self._score_lcs(target, prediction).fmeasure)


def _cannot_beat(longest_common: int, length_a: int, length_b: int, best: float) -> bool:
    """True when two token lists of these lengths, whose LCS is at most `longest_common`,
    cannot score above `best`.

    The F-measure is 2·LCS/(m+n); the margin keeps this pruning on the safe side of float
    rounding, so the maximum stays exact.
    """
    if length_a == 0 or length_b == 0:
        return True
    return 2 * longest_common / (length_a + length_b) < best - 1e-9


def _shared_tokens(mine: Counter[str], theirs: Counter[str]) -> int:
    """How many tokens two bags share (with multiplicity): a bound on their LCS."""
    if len(theirs) < len(mine):
        mine, theirs = theirs, mine
    return sum(min(count, theirs[token]) for token, count in mine.items() if token in theirs)


def check_rouge_l_novelty(pool: pd.DataFrame, round_number: int, threshold: float,
                          sample_size: int = DEFAULT_ROUGE_SAMPLE_SIZE,
                          random_seed: int = 0,
                          pair_budget: int = DEFAULT_ROUGE_PAIR_BUDGET,
                          other_texts: Mapping[str, str] | None = None) -> CheckOutcome:
    """Rescore this round's accepted tasks with rouge-score itself, at a cost bounded by
    `pair_budget` whatever the pool size.

    The pool keeps tasks in acceptance order, so "the pool before" a task is every row above it.
    - Every new task is rescored against the nearest neighbour the fast filter recorded for it
      (all recorded neighbours for sampled tasks): each recorded score must be reproduced
      exactly and stay ≤ `threshold`.
    - `sample_size` new tasks are rescored against the pool before them: all of it while that
      fits in the pair budget (then the check is exhaustive for them), else a seeded random
      sample of earlier rows. Each score must be ≤ `threshold` and ≤ the task's stored
      `max_rouge_l` (the filter compared it with a superset of those rows). Only the maximum
      matters there, so a pair whose shared tokens (a bound on its LCS) cannot beat the best so
      far is counted in `bounded_pairs` and not rescored; the maximum is the one rescoring
      every pair gives.

    Neighbours are recorded by task id; their texts come from the pool, else `other_texts`
    (task id → instruction: the round's candidates that passed the filter but not a later
    stage). A neighbour whose text is found nowhere is reported as a mismatch.
    """
    instructions = pool["instruction"].astype(str).tolist()
    is_new = ((pool["origin"] == Origin.MACHINE) & (pool["round"] == round_number)).to_numpy()
    positions = np.flatnonzero(is_new).tolist()
    rng = random.Random(random_seed)
    sampled = sorted(rng.sample(positions, min(sample_size, len(positions))))
    reference = _RougeReference()
    stored = pool["max_rouge_l"].tolist()
    # Only the new rows' neighbours (and the texts they name) become Python objects.
    neighbours = dict(zip(positions, pool["most_similar"].iloc[positions].tolist()
                          if "most_similar" in pool.columns else [None] * len(positions),
                          strict=True))
    named = {str(n.get("task_id")) for value in neighbours.values() for n in _as_list(value)}
    task_ids = pool["task_id"].astype(str)
    in_pool = np.flatnonzero(task_ids.isin(named).to_numpy())
    text_of = {**(other_texts or {}),
               **{str(task_id): instructions[index] for task_id, index
                  in zip(task_ids.to_numpy()[in_pool], in_pool.tolist(), strict=True)}}
    above: list[dict[str, Any]] = []
    inconsistent: list[dict[str, Any]] = []
    mismatched: list[dict[str, Any]] = []
    counts = {"scored_pairs": 0, "bounded_pairs": 0, "neighbour_pairs": 0,
              "exhaustive_tasks": 0}
    highest = 0.0

    def task_facts(position: int, best: float, nearest: str | None) -> dict[str, Any]:
        return {"task_id": str(pool["task_id"].iloc[position]),
                "instruction": instructions[position], "recomputed_max": best,
                "nearest": nearest}

    sampled_set = set(sampled)
    for position in positions:
        mine = reference.tokens(instructions[position])
        recorded_neighbours = _as_list(neighbours[position])
        if position not in sampled_set:  # the nearest one decides; sampled tasks get all
            recorded_neighbours = sorted(recorded_neighbours, key=_recorded_score,
                                         reverse=True)[:1]
        for neighbour in recorded_neighbours:
            recorded = neighbour.get("score")
            text = neighbour.get("instruction") or text_of.get(str(neighbour.get("task_id")))
            if text is None:
                mismatched.append({**task_facts(position, 0.0, None),
                                   "recorded_score": recorded,
                                   "unknown_neighbour": str(neighbour.get("task_id"))})
                continue
            score = reference.fmeasure(target=mine, prediction=reference.tokens(text))
            counts["neighbour_pairs"] += 1
            highest = max(highest, score)
            if recorded is not None and abs(score - float(recorded)) > 1e-12:
                mismatched.append({**task_facts(position, score, text),
                                   "recorded_score": float(recorded)})
            if score > threshold:
                above.append(task_facts(position, score, text))

    per_task = pair_budget // max(1, len(sampled))
    for position in sampled:
        mine, best, nearest = reference.tokens(instructions[position]), 0.0, None
        earlier = range(position)
        if position > per_task:
            earlier = sorted(rng.sample(range(position), per_task))
        else:
            counts["exhaustive_tasks"] += 1
        my_bag = reference.bag(instructions[position])
        for index in earlier:
            theirs = reference.tokens(instructions[index])
            # Pairs that cannot beat the best so far, by length or by the tokens they share
            # (both bound the LCS), leave the maximum unchanged and are not rescored.
            if (_cannot_beat(min(len(mine), len(theirs)), len(mine), len(theirs), best)
                    or _cannot_beat(_shared_tokens(my_bag, reference.bag(instructions[index])),
                                    len(mine), len(theirs), best)):
                counts["bounded_pairs"] += 1
                continue
            score = reference.fmeasure(target=mine, prediction=theirs)
            counts["scored_pairs"] += 1
            if score > best:
                best, nearest = score, index
        highest = max(highest, best)
        task = task_facts(position, best,
                          instructions[nearest] if nearest is not None else None)
        if best > threshold:
            above.append(task)
        recorded = stored[position]
        if recorded is not None and not pd.isna(recorded) and best > float(recorded) + 1e-12:
            inconsistent.append({**task, "stored_max_rouge_l": float(recorded)})
    return CheckOutcome(not above and not inconsistent and not mismatched, {
        "threshold": threshold,
        "accepted_this_round": len(positions),
        "sampled": len(sampled),
        "exhaustive_tasks": counts["exhaustive_tasks"],
        "scored_pairs": counts["scored_pairs"],
        "bounded_pairs": counts["bounded_pairs"],
        "neighbour_pairs": counts["neighbour_pairs"],
        "pair_budget": pair_budget,
        "highest_recomputed": highest,
        "above_threshold": len(above),
        "stored_score_too_low": len(inconsistent),
        "neighbour_score_mismatch": len(mismatched),
        "examples": (above + inconsistent + mismatched)[:MAX_EXAMPLES],
    })


def _recorded_score(neighbour: dict) -> float:
    score = neighbour.get("score")
    return -1.0 if score is None else float(score)


def _round_rows(pool: pd.DataFrame, round_number: int | None) -> pd.DataFrame:
    """The rows `round_number` added (all rows when None): earlier rows passed their own
    round's check and come back from Parquet with the stored types."""
    if round_number is None or "round" not in pool.columns:
        return pool
    return pool[pool["round"] == round_number]


def check_pool_schema(pool: pd.DataFrame, schema: pa.Schema = POOL_SCHEMA,
                      round_number: int | None = None) -> CheckOutcome:
    """Every stored column is present and converts to its declared Arrow type; keys are set
    and task ids unique in the whole pool. Types are checked on `round_number`'s rows."""
    missing = [name for name in schema.names if name not in pool.columns]
    mistyped: dict[str, str] = {}
    typed = _round_rows(pool, round_number)
    for field in schema:
        if field.name in missing:
            continue
        values = [None if is_missing(value) else value for value in typed[field.name].tolist()]
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


def check_accepted_tasks_have_instances(pool: pd.DataFrame,
                                        round_number: int | None = None) -> CheckOutcome:
    """Every machine-generated task (of `round_number`, when given) has a valid instance."""
    rows = _round_rows(pool, round_number)
    machine = rows[rows["origin"] == Origin.MACHINE]
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
    return instances[instances["status"] == InstanceStatus.KEPT]


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
