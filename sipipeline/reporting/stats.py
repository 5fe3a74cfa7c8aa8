"""Statistics of a bootstrapped dataset, per round and cumulative: the paper's numbers and figures.

Numbers only, pure pandas/numpy (no Dagster): the `dataset_stats` asset turns
`DatasetStats.metadata` into numeric asset metadata (so the UI can plot it across rounds), stores
`table` (long format, so the next round can add its funnel to this one's), shows the display
tables of `sipipeline.reporting.tables` rendered by `markdown_render`, and hands the object to
`sipipeline.reporting.render` for the PNG plots and the HTML report.

Definitions (the paper's, Wang et al. 2023, Table 1 and Figures 2–4):
- words are whitespace-separated (`len(text.split())`);
- "instances per instruction" is kept instances / kept tasks; the empty-input share is over
  instances; input lengths are over non-empty inputs only;
- ROUGE-L to the nearest seed is, for each machine instruction, the highest ROUGE-L F-measure
  (rouge-score 0.1.2 tokens and float expression) against the seed instructions of the pool;
- round scope = machine tasks accepted in round N and round N's candidates; cumulative scope =
  machine tasks of rounds ≤ N, and the funnel summed over rounds (from the previous round's
  table); seeds scope = the human seed tasks, for comparison.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sipipeline.method.funnel import FunnelStage, round_funnel_counts, stages_from_counts
from sipipeline.method.vocabulary import CandidateStatus, Origin, RejectReason
from sipipeline.reporting import facts, verbs
from sipipeline.reporting.facts import word_count

TABLE_COLUMNS = ["scope", "metric", "value"]
ROUND, CUMULATIVE, SEEDS = "round", "cumulative", "seeds"

REJECT_REASONS = RejectReason.values()
FUNNEL_COUNTS = ("instructions_generated", "instructions_accepted", "instructions_rejected")
ROUGE_BIN_EDGES = np.linspace(0.0, 1.0, 21)
ROUGE_HIST_PREFIX = "rouge_l_to_seed_hist/"
FUNNEL_PREFIX = "funnel/"

# Metrics that are ratios or averages (float metadata); every other metric is a count (int).
RATIO_METRICS = {
    "classification_share", "instances_per_instruction", "empty_input_share", "acceptance_rate",
    "instruction_words_mean", "instruction_words_median", "input_words_mean",
    "input_words_median", "output_words_mean", "output_words_median", "rouge_l_to_seed_mean",
    "rouge_l_to_seed_median", "verb_noun_share",
}

# GPT-3 (davinci) figures reported in the paper, shown next to ours for comparison.
PAPER_FIGURES: dict[str, float] = {
    "tasks": 52445,
    "classification_tasks": 11584,
    "classification_share": 11584 / 52445,
    "instances": 82439,
    "instances_per_instruction": 82439 / 52445,
    "empty_input_share": 0.435,
    "instruction_words_mean": 15.9,
    "input_words_mean": 12.7,
    "output_words_mean": 18.9,
    "instructions_with_verb_noun": 26559,
}


@dataclass
class DatasetStats:
    """Everything the stats asset shows: numbers, tables, and the data behind the plots."""

    table: pd.DataFrame  # long format: scope ("round"|"cumulative"|"seeds"), metric, value
    metadata: dict[str, float | int | str]  # flat numbers for Dagster numeric metadata
    top_verbs: pd.DataFrame  # verb, noun, count, verb_count (empty when spaCy unavailable)
    # task_id, round, score: ROUGE-L of each machine instruction (rounds <= N) to its nearest seed
    rouge_l_to_seed: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["task_id", "round", "score"]))
    verb_noun_status: str = ""
    round_number: int | None = None

    def value(self, scope: str, metric: str) -> float:
        """One number of the table (NaN when absent), for tests and reports."""
        hit = self.table[(self.table["scope"] == scope) & (self.table["metric"] == metric)]
        return float(hit["value"].iloc[0]) if len(hit) else math.nan

    def funnel(self, scope: str = ROUND) -> list[FunnelStage]:
        """The whole funnel of a scope ("round" or "cumulative"); empty when not recorded."""
        rows = self.table[(self.table["scope"] == scope)
                          & self.table["metric"].str.startswith(FUNNEL_PREFIX)]
        if not len(rows):
            return []
        return stages_from_counts({metric[len(FUNNEL_PREFIX):]: value for metric, value
                                   in zip(rows["metric"], rows["value"], strict=True)})


# ---------------------------------------------------------------------------------------------
# Building blocks


def explode_instances(tasks: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, instance): task_id, round, is_classification, input, output."""
    rows = []
    columns = (tasks["task_id"], tasks["round"], tasks["is_classification"], tasks["instances"])
    for task_id, round_value, is_cls, instances in zip(*columns, strict=True):
        for instance in facts.instance_list(instances):
            rows.append((task_id, int(round_value), bool(is_cls),
                         str(instance.get("input") or ""), str(instance.get("output") or "")))
    return pd.DataFrame(rows, columns=["task_id", "round", "is_classification", "input", "output"])


def machine_tasks(pool: pd.DataFrame, round_number: int | None) -> pd.DataFrame:
    """The pool's machine tasks of rounds ≤ round_number (all of them when it is None)."""
    machine = pool[pool["origin"].astype(str) == Origin.MACHINE]
    if round_number is not None:
        machine = machine[machine["round"].astype(int) <= round_number]
    return machine


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def _median(values: Sequence[float]) -> float:
    return float(np.median(values)) if len(values) else math.nan


def _share(part: int, whole: int) -> float:
    return part / whole if whole else math.nan


def instance_lengths(tasks: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Word counts of every instance input (0 = empty) and output of these pool rows: the
    stored facts when every row has them, else counted from the instances' text."""
    if facts.lengths_stored(tasks):
        return (facts.flat_word_counts(tasks, facts.INPUT_WORDS),
                facts.flat_word_counts(tasks, facts.OUTPUT_WORDS))
    counted = [facts.instance_word_counts(value) for value in tasks["instances"]]
    return (np.fromiter((n for inputs, _ in counted for n in inputs), dtype=np.int64),
            np.fromiter((n for _, outputs in counted for n in outputs), dtype=np.int64))


def instruction_word_counts(tasks: pd.DataFrame) -> list[int]:
    """Word count of each task's instruction: the stored fact when every row has it, else
    counted from the text."""
    if facts.INSTRUCTION_WORDS in tasks.columns and not tasks[facts.INSTRUCTION_WORDS].isna().any():
        return tasks[facts.INSTRUCTION_WORDS].astype(int).tolist()
    return [word_count(text) for text in tasks["instruction"]]


def task_metrics(tasks: pd.DataFrame) -> dict[str, float]:
    """Counts, classification share, instances and word lengths of a set of pool rows."""
    n_tasks = len(tasks)
    n_classification = int(tasks["is_classification"].astype(bool).sum()) if n_tasks else 0
    all_inputs, output_words = instance_lengths(tasks)
    n_instances = len(output_words)
    empty_inputs = int((all_inputs == 0).sum())
    instruction_words = instruction_word_counts(tasks)
    input_words = all_inputs[all_inputs > 0]
    return {
        "tasks": n_tasks,
        "classification_tasks": n_classification,
        "classification_share": _share(n_classification, n_tasks),
        "instances": n_instances,
        "instances_per_instruction": _share(n_instances, n_tasks),
        "empty_input_instances": empty_inputs,
        "empty_input_share": _share(empty_inputs, n_instances),
        "instruction_words_mean": _mean(instruction_words),
        "instruction_words_median": _median(instruction_words),
        "input_words_mean": _mean(input_words),
        "input_words_median": _median(input_words),
        "output_words_mean": _mean(output_words),
        "output_words_median": _median(output_words),
    }


def funnel_metrics(generated: pd.DataFrame | None) -> dict[str, float]:
    """Candidates generated, accepted, and rejected per reason (every known reason listed)."""
    metrics: dict[str, float] = {name: 0 for name in FUNNEL_COUNTS}
    metrics.update({f"rejected/{reason}": 0 for reason in REJECT_REASONS})
    if generated is not None and len(generated):
        status = generated["status"].astype(str)
        metrics["instructions_generated"] = len(generated)
        metrics["instructions_accepted"] = int((status == CandidateStatus.ACCEPTED).sum())
        rejected = generated[status != CandidateStatus.ACCEPTED]
        metrics["instructions_rejected"] = len(rejected)
        reasons = rejected["reject_reason"].fillna("unknown").astype(str)
        for reason, count in reasons.value_counts().sort_index().items():
            metrics[f"rejected/{reason}"] = int(count)
    metrics["acceptance_rate"] = _share(metrics["instructions_accepted"],
                                        metrics["instructions_generated"])
    return metrics


def rouge_metrics(scores: Sequence[float]) -> dict[str, float]:
    """Mean, median and a 20-bin histogram (0.05 wide) of nearest-seed ROUGE-L scores."""
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[~np.isnan(scores)]
    counts, _ = np.histogram(scores, bins=ROUGE_BIN_EDGES)
    metrics: dict[str, float] = {
        "rouge_l_to_seed_mean": _mean(scores),
        "rouge_l_to_seed_median": _median(scores),
    }
    for low, high, count in zip(ROUGE_BIN_EDGES[:-1], ROUGE_BIN_EDGES[1:], counts, strict=True):
        metrics[f"{ROUGE_HIST_PREFIX}{low:.2f}-{high:.2f}"] = int(count)
    return metrics


def verb_metrics(pairs: pd.DataFrame) -> dict[str, float]:
    """How many instructions have a root verb / a verb–noun pair, and how many distinct ones."""
    with_verb = pairs["verb"].notna()
    with_pair = with_verb & pairs["noun"].notna()
    both = pairs[with_pair]
    return {
        "instructions_with_verb": int(with_verb.sum()),
        "instructions_with_verb_noun": int(with_pair.sum()),
        "verb_noun_share": _share(int(with_pair.sum()), len(pairs)),
        "distinct_verbs": int(pairs.loc[with_verb, "verb"].nunique()),
        "distinct_verb_nouns": int(len(both.drop_duplicates(["verb", "noun"]))),
    }


# ---------------------------------------------------------------------------------------------
# Assembling DatasetStats


def _rows(scope: str, metrics: Mapping[str, float]) -> list[tuple[str, str, float]]:
    return [(scope, name, float(value)) for name, value in metrics.items()]


def metric_kind(metric: str) -> type:
    """int for counts, float for ratios and averages."""
    return float if metric in RATIO_METRICS else int


def _metadata(table: pd.DataFrame, scopes: Sequence[str]) -> dict[str, float | int | str]:
    """`<scope>/<metric>` numbers (histogram bins left to the table and the plots)."""
    metadata: dict[str, float | int | str] = {}
    for scope, metric, value in table.itertuples(index=False):
        if scope not in scopes or metric.startswith(ROUGE_HIST_PREFIX) or math.isnan(value):
            continue
        metadata[f"{scope}/{metric}"] = metric_kind(metric)(value)
    return metadata


def _previous_cumulative_funnel(previous_table: pd.DataFrame | None) -> dict[str, float]:
    if previous_table is None or not len(previous_table):
        return {}
    rows = previous_table[previous_table["scope"] == CUMULATIVE]
    pairs = zip(rows["metric"], rows["value"], strict=True)
    return {metric: float(value) for metric, value in pairs
            if metric in FUNNEL_COUNTS or metric.startswith(("rejected/", FUNNEL_PREFIX))
            or metric == "funnel_rounds"}


def _cumulative_funnel(round_funnel: Mapping[str, float],
                       previous: Mapping[str, float]) -> dict[str, float]:
    """This round's funnel added to the previous rounds' total (funnel_rounds counts them)."""
    keys = list(dict.fromkeys([*round_funnel, *previous]))
    total = {key: round_funnel.get(key, 0) + previous.get(key, 0)
             for key in keys if key not in ("acceptance_rate", "funnel_rounds")}
    total["acceptance_rate"] = _share(total["instructions_accepted"],
                                      total["instructions_generated"])
    total["funnel_rounds"] = previous.get("funnel_rounds", 0) + 1
    return total


def _column(frame: pd.DataFrame | None, name: str) -> pd.Series:
    if frame is None or name not in frame.columns:
        return pd.Series([], dtype=object)
    return frame[name]


def whole_funnel_metrics(pool: pd.DataFrame, generated: pd.DataFrame | None,
                         labels: pd.DataFrame | None, instances: pd.DataFrame | None,
                         round_number: int) -> dict[str, float]:
    """`funnel/<stage>` counts of the round's whole funnel (see `sipipeline.method.funnel`);
    none unless all three of the round's tables are given (a partial funnel would mislead)."""
    if generated is None or labels is None or instances is None:
        return {}
    counts = round_funnel_counts(generated, labels, instances, pool, round_number)
    return {f"{FUNNEL_PREFIX}{key}": count for key, count in counts.items()}


def compute_dataset_stats(pool: pd.DataFrame, generated: pd.DataFrame | None, round_number: int,
                          previous_table: pd.DataFrame | None = None,
                          labels: pd.DataFrame | None = None,
                          instances: pd.DataFrame | None = None) -> DatasetStats:
    """Statistics of round N and of rounds 1..N (see module docstring for definitions).

    `pool` is the cumulative pool after round N (`filtered_tasks[N]`, seeds included), with
    the per-task facts of `sipipeline.reporting.facts` stored as columns (rows without them
    are computed here, so the result is the same either way);
    `generated`, `labels` and `instances` are round N's `generated_instructions`,
    `classification_labels` and `instances` (the last two complete the funnel);
    `previous_table` is round N−1's `DatasetStats.table` (None in round 1), whose cumulative
    funnel this round's is added to.
    """
    pool = facts.with_task_facts(pool)
    origin = _column(pool, "origin").astype(str)
    machine = pool[(origin == Origin.MACHINE).to_numpy()]
    machine = machine[machine["round"].astype(int) <= round_number]
    seeds = pool[(origin == Origin.SEED).to_numpy()]
    this_round = (machine["round"].astype(int) == round_number).to_numpy()
    if generated is not None and len(generated) and "round" in generated.columns:
        generated = generated[generated["round"].astype(int) == round_number]

    scores = machine[facts.ROUGE_L_TO_SEED].to_numpy(dtype=np.float64)
    rouge_frame = pd.DataFrame({"task_id": machine["task_id"].to_numpy(),
                                "round": machine["round"].astype(int).to_numpy(),
                                "score": scores})
    verb_status = verbs.load_parser()[1]
    verbs_available = (verb_status.startswith("available") and facts.all_parsed(machine)
                       and facts.all_parsed(seeds))
    machine_pairs = facts.verb_pairs(machine)
    seed_pairs = facts.verb_pairs(seeds)

    round_funnel = {**funnel_metrics(generated),
                    **whole_funnel_metrics(pool, generated, labels, instances, round_number)}
    cumulative_funnel = _cumulative_funnel(round_funnel,
                                           _previous_cumulative_funnel(previous_table))
    scope_metrics: dict[str, dict[str, float]] = {
        ROUND: {**task_metrics(machine[this_round]), **round_funnel,
                **rouge_metrics(scores[this_round])},
        CUMULATIVE: {**task_metrics(machine), **cumulative_funnel, **rouge_metrics(scores)},
        SEEDS: task_metrics(seeds),
    }
    if verbs_available:
        scope_metrics[ROUND].update(verb_metrics(machine_pairs[this_round]))
        scope_metrics[CUMULATIVE].update(verb_metrics(machine_pairs))
        scope_metrics[SEEDS].update(verb_metrics(seed_pairs))
    table = pd.DataFrame([row for scope, metrics in scope_metrics.items()
                          for row in _rows(scope, metrics)], columns=TABLE_COLUMNS)
    top = (verbs.top_verb_nouns(machine_pairs) if verbs_available
           else verbs.top_verb_nouns(machine_pairs.iloc[0:0]))
    metadata = _metadata(table, (ROUND, CUMULATIVE))
    metadata["round_number"] = int(round_number)
    metadata["verb_noun_status"] = verb_status
    return DatasetStats(table=table, metadata=metadata, top_verbs=top,
                        rouge_l_to_seed=rouge_frame, verb_noun_status=verb_status,
                        round_number=round_number)


def compute_seed_stats(seeds: pd.DataFrame) -> DatasetStats:
    """Statistics of the seed tasks alone (scope "seeds"), e.g. to check against known facts."""
    parsed = verbs.extract_verb_nouns(seeds["instruction"].astype(str).tolist())
    metrics = task_metrics(seeds)
    if parsed.available:
        metrics.update(verb_metrics(parsed.pairs))
    table = pd.DataFrame(_rows(SEEDS, metrics), columns=TABLE_COLUMNS)
    top = verbs.top_verb_nouns(parsed.pairs if parsed.available else parsed.pairs.iloc[0:0])
    metadata = _metadata(table, (SEEDS,))
    metadata["verb_noun_status"] = parsed.status
    return DatasetStats(table=table, metadata=metadata, top_verbs=top,
                        verb_noun_status=parsed.status)
