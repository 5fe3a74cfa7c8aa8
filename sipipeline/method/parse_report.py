"""How well a stage's answers could be read: parse-failure shares and parsers used, for metadata.

A high failure share says the model (or the prompt style) does not fit the method: the
numbers are reported per stage so a chat round on a new model shows at once where it fails.
"""

from __future__ import annotations

import pandas as pd

from sipipeline.method.vocabulary import PARSE_FAILURE_REASONS, DropReason

#: Drop reasons meaning an instance answer could not be read (not a rule deciding against it).
INSTANCE_PARSE_FAILURES = (DropReason.MISSING_FIELD_MARKER, DropReason.UNPARSEABLE,
                           DropReason.TRUNCATED, DropReason.UNFINISHED_THINKING)


def _share(failures: int, total: int) -> float:
    return failures / total if total else 0.0


def _parsers(frame: pd.DataFrame) -> dict[str, int]:
    if "parsed_as" not in frame.columns:
        return {}
    counts = frame["parsed_as"].dropna().value_counts()
    return {f"parsed_as/{name}": int(count) for name, count in sorted(counts.items())}


def generation_parse_report(generated: pd.DataFrame) -> dict[str, float | int]:
    """Records the parser could not use (unparseable, truncated, unfinished thinking)."""
    failures = int(generated["reject_reason"].isin(PARSE_FAILURE_REASONS).sum())
    return {"failures": failures, "failure_share": _share(failures, len(generated)),
            **_parsers(generated)}


def classification_parse_report(labels: pd.DataFrame) -> dict[str, float | int]:
    """Answers that were neither Yes nor No (chat answers only; a completion answer is read
    as No when it is not Yes, as in the paper)."""
    problems = (labels["label_problem"] if "label_problem" in labels.columns
                else pd.Series([], dtype=object))
    failures = int(problems.notna().sum())
    report: dict[str, float | int] = {"failures": failures,
                                      "failure_share": _share(failures, len(labels))}
    for problem, count in sorted(problems.dropna().value_counts().items()):
        report[f"problem/{problem}"] = int(count)
    return {**report, **_parsers(labels)}


def instances_parse_report(instances: pd.DataFrame) -> dict[str, float | int]:
    """Instance records dropped because their answer could not be read."""
    failures = int(instances["drop_reason"].isin(INSTANCE_PARSE_FAILURES).sum())
    return {"failures": failures, "failure_share": _share(failures, len(instances)),
            **_parsers(instances)}
