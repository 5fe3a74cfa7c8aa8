"""The quality table (the paper's Table 2) and agreement between two reviewers.

Shares are over the records with a clear answer to that question; unparseable answers are
counted in their own column, never folded into yes or no. Each share carries a Wilson score
interval, which stays inside [0, 1] and is honest at the sizes a review has (tens to hundreds).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import pandas as pd

from sipipeline.method.review import QUESTION_TEXT, QUESTIONS

ALL_FIELDS_VALID = "all_fields_valid"
ALL_FIELDS_TEXT = "All three fields are valid"
Z_95 = 1.959963984540054

#: The paper's human review of 200 GPT-3 tasks (Wang et al. 2023, Table 2).
PAPER_SHARES: dict[str, float] = {
    "valid_instruction": 0.92,
    "appropriate_input": 0.79,
    "correct_output": 0.58,
    ALL_FIELDS_VALID: 0.54,
}

TABLE_COLUMNS = ["measure", "question", "yes", "no", "unparseable", "answered", "share",
                 "ci_low", "ci_high", "paper"]


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial share; (nan, nan) with no trials."""
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return math.nan, math.nan
    share = successes / trials
    denominator = 1 + z * z / trials
    centre = (share + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) \
        / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _answers(verdicts: pd.DataFrame, column: str) -> list[bool | None]:
    return [None if pd.isna(v) else bool(v) for v in verdicts[column]]


def _row(measure: str, question: str, answers: Sequence[bool | None]) -> dict:
    yes = sum(1 for a in answers if a is True)
    no = sum(1 for a in answers if a is False)
    answered = yes + no
    low, high = wilson_interval(yes, answered)
    return {"measure": measure, "question": question, "yes": yes, "no": no,
            "unparseable": len(answers) - answered, "answered": answered,
            "share": yes / answered if answered else math.nan, "ci_low": low, "ci_high": high,
            "paper": PAPER_SHARES[measure]}


def quality_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """One row per question plus "all fields valid" (a record whose three answers are yes; a
    record with any unparseable answer is unparseable there)."""
    rows = [_row(str(q), QUESTION_TEXT[q], _answers(verdicts, str(q))) for q in QUESTIONS]
    per_record = list(zip(*(_answers(verdicts, str(q)) for q in QUESTIONS), strict=True))
    combined = [None if None in answers else all(answers) for answers in per_record]
    rows.append(_row(ALL_FIELDS_VALID, ALL_FIELDS_TEXT, combined))
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def percent(value: float) -> str:
    return "–" if math.isnan(value) else f"{100 * value:.0f}%"


def table_metadata(table: pd.DataFrame) -> dict[str, float | int]:
    """Flat numbers for asset metadata (`<measure>/share`, `…/ci_low`, …)."""
    values: dict[str, float | int] = {}
    for row in table.itertuples():
        values[f"{row.measure}/share"] = float(row.share)
        values[f"{row.measure}/ci_low"] = float(row.ci_low)
        values[f"{row.measure}/ci_high"] = float(row.ci_high)
        values[f"{row.measure}/unparseable"] = int(row.unparseable)
    return values


# ----------------------------------------------------------------------------- agreement
def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float:
    """Cohen's kappa of two raters over the same items: (p_o − p_e) / (1 − p_e).

    NaN when it is undefined: no items, or both raters always gave one and the same label
    (chance agreement is then 1).
    """
    if len(first) != len(second):
        raise ValueError(f"the raters rated {len(first)} and {len(second)} items")
    total = len(first)
    if total == 0:
        return math.nan
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / total
    labels = set(first) | set(second)
    expected = sum((list(first).count(label) / total) * (list(second).count(label) / total)
                   for label in labels)
    if expected == 1:
        return math.nan
    return (observed - expected) / (1 - expected)


AGREEMENT_COLUMNS = ["measure", "pairs", "agreement", "kappa"]


def agreement_table(human: pd.DataFrame, judge: pd.DataFrame) -> pd.DataFrame:
    """Per question, over records both answered clearly: pairs, raw agreement and kappa."""
    merged = human.merge(judge, on="record_id", suffixes=("_human", "_judge"))
    rows = []
    for question in QUESTIONS:
        pairs = [(h, j) for h, j in zip(_answers(merged, f"{question}_human"),
                                       _answers(merged, f"{question}_judge"), strict=True)
                 if h is not None and j is not None]
        firsts = [h for h, _ in pairs]
        seconds = [j for _, j in pairs]
        agreement = (sum(h == j for h, j in pairs) / len(pairs)) if pairs else math.nan
        rows.append({"measure": str(question), "pairs": len(pairs), "agreement": agreement,
                     "kappa": cohen_kappa(firsts, seconds)})
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)
