"""The paper's quality review as plain functions: which records to review, what to ask a judge
model, how to read its answer, and how verdicts filter a pool.

The paper reviewed 200 random machine instructions with one random instance each and asked
three questions: does the instruction describe a valid task, is the input appropriate for it,
is the output a correct and acceptable response. Here the sample is stratified by
classification / non-classification (the two generation orders fail differently), seeded, and
its record ids are the instances' ids, so judge and human verdicts on the same record join.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from sipipeline.method.rounds import ModelText, stable_id
from sipipeline.method.schema import REVIEW_SCHEMA, frame
from sipipeline.method.vocabulary import Origin, ReviewQuestion, ReviewSource

DEFAULT_SAMPLE_SIZE = 200  # the paper's review size
QUESTIONS: tuple[ReviewQuestion, ...] = tuple(ReviewQuestion)

#: How each question is put to a judge and to people (the paper's wording).
QUESTION_TEXT: Mapping[ReviewQuestion, str] = {
    ReviewQuestion.VALID_INSTRUCTION: "Does the instruction describe a valid task?",
    ReviewQuestion.APPROPRIATE_INPUT: "Is the input appropriate for the instruction?",
    ReviewQuestion.CORRECT_OUTPUT:
        "Is the output a correct and acceptable response to the instruction and input?",
}

EMPTY_INPUT = "(no input)"
REASON_LIMIT = 300

JUDGE_HEADER = (
    "Reviews of machine-generated training examples for an instruction-following model. "
    "Each review judges one example strictly and answers three questions about it:\n"
)
JUDGE_NOTE = (
    "An empty input is appropriate when the instruction needs no input. For a classification "
    "task the output is the class label.\n"
    "Each review answers with exactly four lines: the three questions' names, each followed by "
    "yes or no, then a reason in one short sentence.\n"
)
REVIEW_MARKER = "Review"


@dataclass(frozen=True)
class WorkedReview:
    """A demonstration in the judge prompt: one clear "yes" record and one with a wrong
    output, so a base model sees the answer format and that "no" is an answer too."""

    instruction: str
    input: str
    output: str
    answers: tuple[bool, bool, bool]
    reason: str


WORKED_REVIEWS = (
    WorkedReview("Give the capital of the country.", "France", "Paris", (True, True, True),
                 "Paris is the capital of France."),
    WorkedReview("Sort the numbers in ascending order.", "5, 2, 9", "9, 5, 2",
                 (True, True, False), "The numbers are sorted in descending order."),
)
#: The judge's answer ends where a base model would start the next review.
JUDGE_STOP_SEQUENCES = (f"\n{REVIEW_MARKER} ", "\nInstruction:")


# ----------------------------------------------------------------------------- sampling
def stratum_of(is_classification: object) -> str:
    return "classification" if bool(is_classification) else "non_classification"


def allocate(sizes: Mapping[str, int], total: int) -> dict[str, int]:
    """Split `total` across strata in proportion to their sizes (largest remainder).

    Every stratum gets at most its size; when `total` covers everything, everything is taken.
    """
    available = sum(sizes.values())
    if total >= available:
        return dict(sizes)
    exact = {name: total * size / available for name, size in sizes.items()}
    quota = {name: int(value) for name, value in exact.items()}
    by_remainder = sorted(sizes, key=lambda name: (-(exact[name] - quota[name]), name))
    for name in by_remainder[: total - sum(quota.values())]:
        quota[name] += 1
    return quota


def _instances(value: object) -> list[Mapping]:
    return [i for i in (value if isinstance(value, (list, tuple)) else []) if i is not None]


def review_sample(pool: pd.DataFrame, round_number: int, size: int = DEFAULT_SAMPLE_SIZE,
                  seed: int = 0) -> pd.DataFrame:
    """Up to `size` of the round's machine tasks with one instance each, as review records.

    Seeded by (seed, round), stratified by classification, ordered by record id so the same
    inputs always give the same records in the same order.
    """
    if size < 1:
        raise ValueError(f"the review sample size must be at least 1, got {size}")
    tasks = pool[(pool["origin"] == Origin.MACHINE) & (pool["round"] == round_number)]
    tasks = tasks[[bool(_instances(v)) for v in tasks["instances"]]]
    strata: dict[str, pd.DataFrame] = {
        name: group.sort_values("task_id")
        for name, group in tasks.groupby(tasks["is_classification"].map(stratum_of))}
    quota = allocate({name: len(group) for name, group in strata.items()}, size)
    rows = []
    for name in sorted(strata):
        rng = random.Random(f"review:{seed}:{round_number}:{name}")
        group = strata[name]
        for index in sorted(rng.sample(range(len(group)), quota[name])):
            task = group.iloc[index]
            instance = rng.choice(_instances(task["instances"]))
            rows.append(review_record(task, instance, round_number))
    return frame(sorted(rows, key=lambda r: r["record_id"]), REVIEW_SCHEMA)


def instance_id(task_id: str, input_text: str, output_text: str) -> str:
    """The id `rounds.instances_frame` gives the same instance."""
    return stable_id("in", task_id, input_text, output_text)


def _instance_key(task_id: str, instance: Mapping) -> str:
    return instance_id(task_id, str(instance.get("input") or ""),
                       str(instance.get("output") or ""))


def review_record(task: Mapping, instance: Mapping, round_number: int) -> dict:
    input_text = str(instance.get("input") or "")
    output_text = str(instance.get("output") or "")
    return {
        "record_id": _instance_key(task["task_id"], instance),
        "round": round_number,
        "task_id": task["task_id"],
        "instruction": task["instruction"],
        "input": input_text,
        "output": output_text,
        "is_classification": bool(task["is_classification"]),
    }


# ----------------------------------------------------------------------------- judge prompt
def _record_block(number: int, instruction: str, input_text: str, output_text: str) -> str:
    return (f"{REVIEW_MARKER} {number}\n"
            f"Instruction: {instruction.strip()}\n"
            f"Input: {input_text.strip() or EMPTY_INPUT}\n"
            f"Output: {output_text.strip()}\n")


def answer_lines(answers: Sequence[bool], reason: str) -> str:
    """Answers in the format `parse_verdict` reads."""
    lines = [f"{q}: {'yes' if a else 'no'}\n" for q, a in zip(QUESTIONS, answers, strict=True)]
    return "".join(lines) + f"reason: {reason}\n"


def judge_prompt(instruction: str, input_text: str, output_text: str) -> str:
    """The three questions, two worked reviews, then the record to review: continuing the
    text means answering in the format the parser accepts (for base and chat models alike)."""
    questions = "".join(f"{n}. {q}: {QUESTION_TEXT[q]}\n" for n, q in enumerate(QUESTIONS, 1))
    worked = "".join(
        _record_block(n, w.instruction, w.input, w.output) + answer_lines(w.answers, w.reason)
        + "\n" for n, w in enumerate(WORKED_REVIEWS, 1))
    return (f"{JUDGE_HEADER}{questions}{JUDGE_NOTE}\n{worked}"
            + _record_block(len(WORKED_REVIEWS) + 1, instruction, input_text, output_text))


# ----------------------------------------------------------------------------- verdict parsing
@dataclass(frozen=True)
class Verdict:
    """A judge's answers: True/False per question, None where no clear answer was given."""

    answers: Mapping[ReviewQuestion, bool | None]
    reason: str = ""
    problems: tuple[str, ...] = field(default=())

    @property
    def parse_error(self) -> str | None:
        return "; ".join(self.problems) or None


_LABEL_LINE = re.compile(r"^[\s>*#_`-]*(?:\d+[.)]\s*)?([A-Za-z][A-Za-z _-]*?)[\s*_`]*[:=]\s*(.*)$")
_YES_NO = re.compile(r"^[\s*_`\"']*(yes|no)[\s*_`\"'.!]*$", re.IGNORECASE)


def _label(text: str) -> str:
    return re.sub(r"[\s-]+", "_", text.strip().lower())


def parse_verdict(text: str, finish_reason: str = "stop") -> Verdict:
    """Read the four-line answer strictly: an answer is exactly yes or no, or it is not counted.

    A missing, repeated-with-a-different-value or non-yes/no answer leaves that question None
    and says why in `problems`; a refusal or free text leaves all three None. Nothing is guessed
    from wording.
    """
    found: dict[ReviewQuestion, list[str]] = {q: [] for q in QUESTIONS}
    reason = ""
    for line in (text or "").splitlines():
        match = _LABEL_LINE.match(line)
        if not match:
            continue
        label, value = _label(match.group(1)), match.group(2).strip()
        if label == "reason":
            reason = reason or " ".join(value.split())[:REASON_LIMIT]
        elif label in ReviewQuestion.values():
            found[ReviewQuestion(label)].append(value)
    if not any(found.values()):
        cause = "truncated before any verdict" if finish_reason == "length" else (
            "no verdict lines (refusal or free text)")
        return Verdict(dict.fromkeys(QUESTIONS), reason, (cause,))
    answers: dict[ReviewQuestion, bool | None] = {}
    problems = []
    for question, values in found.items():
        parsed = {_yes_no(v) for v in values}
        if not values:
            problems.append(f"{question}: no answer"
                            + (" (truncated)" if finish_reason == "length" else ""))
        elif None in parsed:
            bad = next(v for v in values if _yes_no(v) is None)
            problems.append(f"{question}: {_quote(bad)} is not yes or no")
        elif len(parsed) > 1:
            problems.append(f"{question}: conflicting answers")
        answers[question] = parsed.pop() if len(parsed) == 1 and values else None
    return Verdict(answers, reason, tuple(problems))


def _yes_no(value: str) -> bool | None:
    match = _YES_NO.match(value)
    return None if match is None else match.group(1).lower() == "yes"


def _quote(value: str, limit: int = 40) -> str:
    shown = " ".join(value.split())
    return repr(shown if len(shown) <= limit else shown[: limit - 1] + "…")


def judged_records(records: pd.DataFrame, responses: Sequence[ModelText],
                   model: str) -> pd.DataFrame:
    """The sample with each judge answer parsed into verdicts (raw answer kept)."""
    rows = []
    for record, response in zip(records.to_dict("records"), responses, strict=True):
        verdict = parse_verdict(response.text, response.finish_reason)
        rows.append({**record, **verdict_columns(verdict), "source": ReviewSource.JUDGE,
                     "raw_answer": response.text, "reviewer": model})
    return frame(rows, REVIEW_SCHEMA)


def verdict_columns(verdict: Verdict) -> dict:
    return {**{str(q): verdict.answers.get(q) for q in QUESTIONS},
            "reason": verdict.reason, "parse_error": verdict.parse_error}


# ----------------------------------------------------------------------------- filtering
@dataclass(frozen=True)
class JudgeFilterResult:
    pool: pd.DataFrame
    removed_tasks: tuple[str, ...]
    removed_instances: int


def _is_false(value: object) -> bool:
    """A clear "no" (False); None and NaN are no answer."""
    return not pd.isna(value) and not bool(value)


def drop_judged_invalid(pool: pd.DataFrame, verdicts: pd.DataFrame) -> JudgeFilterResult:
    """The pool without what the judge marked invalid.

    A task whose instruction was judged not valid leaves the pool; an instance whose input or
    output was judged wrong leaves its task, and a task left with no instance leaves too.
    Unparseable verdicts (None) remove nothing: only a clear "no" counts.
    """
    bad_tasks = set(verdicts.loc[[_is_false(v) for v in verdicts["valid_instruction"]],
                                 "task_id"])
    bad_instances: set[str] = set()
    for row in verdicts.itertuples():
        if _is_false(row.appropriate_input) or _is_false(row.correct_output):
            bad_instances.add(row.record_id)
    kept_rows, removed, removed_instances = [], [], 0
    for task in pool.to_dict("records"):
        if task["task_id"] in bad_tasks:
            removed.append(task["task_id"])
            continue
        instances = _instances(task["instances"])
        kept = [i for i in instances if _instance_key(task["task_id"], i) not in bad_instances]
        removed_instances += len(instances) - len(kept)
        if instances and not kept:
            removed.append(task["task_id"])
            continue
        kept_rows.append({**task, "instances": kept})
    result = pd.DataFrame(kept_rows, columns=pool.columns).reset_index(drop=True)
    return JudgeFilterResult(result, tuple(removed), removed_instances)


def review_records(rows: Iterable[Mapping]) -> pd.DataFrame:
    """Records with the review schema (missing columns empty)."""
    return frame(rows, REVIEW_SCHEMA)
