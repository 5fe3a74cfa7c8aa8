"""The round's whole funnel, from candidates to "added to the pool", computed in one place.

Every view of a round's funnel (asset metadata, the stats table and its plot, the HTML report,
the command line) reads the stages built here, so they all show the same numbers.

A candidate carries at most one reject reason (the first rule it failed), so removing the
candidates of each reason in `REJECT_ORDER` gives the same counts whatever order the rules were
checked in. After novelty the unit is the accepted task: classified, then with at least one
parsed instance, then with at least one instance that passed the instance filters, then added.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from sipipeline.method.parsing import MAX_WORDS, MIN_WORDS_EXCLUSIVE
from sipipeline.method.vocabulary import (
    CandidateStatus,
    DropReason,
    InstanceStatus,
    Origin,
    RejectReason,
)

#: Parse failures first, then the heuristics, then novelty (ROUGE-L against the pool).
REJECT_ORDER: tuple[RejectReason, ...] = (
    RejectReason.UNPARSEABLE,
    RejectReason.TRUNCATED,
    RejectReason.TOO_SHORT,
    RejectReason.TOO_LONG,
    RejectReason.BLACKLISTED_WORD,
    RejectReason.STARTS_WITH_WRITE_A_PROGRAM,
    RejectReason.STARTS_WITH_PUNCTUATION,
    RejectReason.STARTS_WITH_NON_ASCII,
)
OTHER_REJECTED = "other_rejected"

#: Drop reasons meaning nothing usable was read from the model's answer for that instance.
INSTANCE_PARSE_REASONS = frozenset({DropReason.UNPARSEABLE, DropReason.MISSING_FIELD_MARKER,
                                    DropReason.TRUNCATED, DropReason.NO_VALID_INSTANCE})

CANDIDATES = "candidates"
NOVEL = "novel"
CLASSIFIED = "classified"
INSTANCES_PARSED = "instances_parsed"
INSTANCES_KEPT = "instances_kept"
ADDED = "added_to_pool"

#: Every stage key in funnel order; a stage's count is what remains after it.
STAGE_KEYS: tuple[str, ...] = (CANDIDATES, *(r.value for r in REJECT_ORDER), OTHER_REJECTED,
                               NOVEL, CLASSIFIED, INSTANCES_PARSED, INSTANCES_KEPT, ADDED)
#: Stages shown even when they remove nothing (the milestones of a round).
MILESTONES = frozenset({CANDIDATES, NOVEL, CLASSIFIED, INSTANCES_PARSED, INSTANCES_KEPT, ADDED})

_LABELS = {
    CANDIDATES: "candidates parsed from the responses",
    RejectReason.UNPARSEABLE.value: "minus unparseable answers",
    RejectReason.TRUNCATED.value: "minus truncated at the length limit",
    RejectReason.TOO_SHORT.value: f"minus too short (≤ {MIN_WORDS_EXCLUSIVE} words)",
    RejectReason.TOO_LONG.value: f"minus too long (> {MAX_WORDS} words)",
    RejectReason.BLACKLISTED_WORD.value: "minus a blacklisted word",
    RejectReason.STARTS_WITH_WRITE_A_PROGRAM.value: "minus starts with “Write a program”",
    RejectReason.STARTS_WITH_PUNCTUATION.value: "minus starts with punctuation",
    RejectReason.STARTS_WITH_NON_ASCII.value: "minus starts with a non-ASCII character",
    OTHER_REJECTED: "minus other rejections",
    NOVEL: "novel (ROUGE-L to the pool below the threshold)",
    CLASSIFIED: "classified (classification task or not)",
    INSTANCES_PARSED: "with at least one parsed instance",
    INSTANCES_KEPT: "with at least one instance passing the filters",
    ADDED: "added to the pool",
}


@dataclass(frozen=True)
class FunnelStage:
    """One stage: how many remain after it and how many it removed."""

    key: str
    label: str
    count: int
    removed: int

    @property
    def shown(self) -> bool:
        """Worth a line in a table or a bar in a plot."""
        return self.key in MILESTONES or self.removed > 0


def stage_label(key: str) -> str:
    return _LABELS.get(key, key.replace("_", " "))


def stages_from_counts(counts: Mapping[str, float]) -> list[FunnelStage]:
    """The stages of `{stage key: count}` (missing keys count 0), removals derived in order."""
    stages: list[FunnelStage] = []
    previous: int | None = None
    for key in STAGE_KEYS:
        count = int(counts.get(key, 0) or 0)
        removed = 0 if previous is None else max(previous - count, 0)
        stages.append(FunnelStage(key, stage_label(key), count, removed))
        previous = count
    return stages


def _tasks_with(instances: pd.DataFrame, mask: pd.Series) -> set[str]:
    return set(instances.loc[mask, "task_id"].astype(str))


def round_funnel_counts(generated: pd.DataFrame,
                        labels: pd.DataFrame | None = None,
                        instances: pd.DataFrame | None = None,
                        pool: pd.DataFrame | None = None,
                        round_number: int | None = None) -> dict[str, int]:
    """`{stage key: count remaining}` for one round's tables (later stages 0 when absent).

    `generated`, `labels`, `instances` are the round's tables; `pool` is the pool after the round
    (its machine tasks of `round_number` are the "added" stage; without a pool, the tasks with a
    kept instance are).
    """
    counts = dict.fromkeys(STAGE_KEYS, 0)
    if round_number is not None and len(generated) and "round" in generated.columns:
        generated = generated[generated["round"].astype(int) == round_number]
    reasons = generated["reject_reason"].dropna().astype(str)
    by_reason = reasons.value_counts().to_dict()
    remaining = len(generated)
    counts[CANDIDATES] = remaining
    for reason in REJECT_ORDER:
        remaining -= int(by_reason.pop(reason.value, 0))
        counts[reason.value] = remaining
    by_reason.pop(RejectReason.SIMILAR_TO_POOL.value, None)
    remaining -= int(sum(by_reason.values()))  # reasons unknown to this version
    counts[OTHER_REJECTED] = remaining
    accepted = generated.loc[generated["status"].astype(str) == CandidateStatus.ACCEPTED,
                             "task_id"]
    counts[NOVEL] = int(len(accepted))  # what novelty left: the accepted candidates
    accepted_ids = set(accepted.dropna().astype(str))
    if labels is not None and len(labels):
        counts[CLASSIFIED] = len(accepted_ids & set(labels["task_id"].astype(str)))
    if instances is not None and len(instances):
        reason = instances["drop_reason"].astype(object)
        parsed = ~reason.isin(list(INSTANCE_PARSE_REASONS)) | reason.isna()
        kept = instances["status"].astype(str) == InstanceStatus.KEPT
        counts[INSTANCES_PARSED] = len(accepted_ids & _tasks_with(instances, parsed))
        counts[INSTANCES_KEPT] = len(accepted_ids & _tasks_with(instances, kept))
    if pool is not None:
        machine = pool[pool["origin"].astype(str) == Origin.MACHINE]
        if round_number is not None:
            machine = machine[machine["round"].astype(int) == round_number]
        counts[ADDED] = len(accepted_ids & set(machine["task_id"].astype(str)))
    else:
        counts[ADDED] = counts[INSTANCES_KEPT]
    return counts


def round_funnel(generated: pd.DataFrame, labels: pd.DataFrame | None = None,
                 instances: pd.DataFrame | None = None, pool: pd.DataFrame | None = None,
                 round_number: int | None = None) -> list[FunnelStage]:
    """The round's funnel stages (see `round_funnel_counts`)."""
    return stages_from_counts(round_funnel_counts(generated, labels, instances, pool,
                                                  round_number))


def funnel_lines(stages: Iterable[FunnelStage]) -> list[str]:
    """Plain-text lines of the shown stages, e.g. for the command line and the run log."""
    lines = []
    for stage in stages:
        if not stage.shown:
            continue
        removed = f"  (−{stage.removed})" if stage.removed else ""
        lines.append(f"{stage.count:>7,}  {stage.label}{removed}")
    return lines
