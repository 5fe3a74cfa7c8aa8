"""Human review with Label Studio: the review set as its task-import JSON, a labeling config
with the paper's three questions and A–D rating, and its JSON export read back into review
records with the same columns as the judge's.

Pure functions over plain data; the `sipipeline review` command writes and reads the files.
Each task carries the record id, so people's answers join the judge's verdicts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pandas as pd

from sipipeline.method.review import EMPTY_INPUT, QUESTION_TEXT, QUESTIONS, review_records
from sipipeline.method.vocabulary import QualityRating, ReviewSource
from sipipeline.reporting.atomic import write_text

TASKS_FILE = "label_studio_tasks.json"
CONFIG_FILE = "label_studio_config.xml"
RATING = "rating"
REASON = "reason"
YES, NO = "yes", "no"

#: The paper's rating of a response (Section 4.4, Figure 5).
RATING_TEXT: Mapping[QualityRating, str] = {
    QualityRating.A: "A: valid and satisfying response",
    QualityRating.B: "B: acceptable response with minor imperfections",
    QualityRating.C: "C: responds to the instruction but has significant errors",
    QualityRating.D: "D: irrelevant or invalid response",
}

#: Task fields a record needs back from an export.
RECORD_FIELDS = ("record_id", "round", "task_id", "instruction", "input", "output",
                 "is_classification")


class LabelStudioExportError(ValueError):
    """A Label Studio export that is not the JSON export of a sipipeline review set."""


def task_import(records: pd.DataFrame) -> list[dict]:
    """Label Studio tasks (`[{"data": {...}}, …]`), one per review record."""
    tasks = []
    for record in records.to_dict("records"):
        data = {name: _plain(record[name]) for name in RECORD_FIELDS}
        data["input_shown"] = record["input"] or EMPTY_INPUT
        data["stratum"] = "classification" if record["is_classification"] else "other"
        tasks.append({"data": data})
    return tasks


def _plain(value: object) -> object:
    """JSON-friendly scalars (numpy ints and bools become Python ones)."""
    if hasattr(value, "item"):
        return value.item()
    return value


def labeling_config() -> str:
    """The labeling interface: the record, the three yes/no questions, the A–D rating and a
    free-text reason. The control names are the stored column names."""
    lines = ['<View>',
             '  <Header value="Instruction"/>',
             '  <Text name="instruction" value="$instruction"/>',
             '  <Header value="Input"/>',
             '  <Text name="input" value="$input_shown"/>',
             '  <Header value="Output"/>',
             '  <Text name="output" value="$output"/>']
    for question in QUESTIONS:
        lines += [f'  <Header value={quoteattr(QUESTION_TEXT[question])}/>',
                  f'  <Choices name="{question}" toName="output" choice="single-radio" '
                  'required="true" showInline="true">',
                  f'    <Choice value="{YES}"/>',
                  f'    <Choice value="{NO}"/>',
                  '  </Choices>']
    lines += ['  <Header value="How good is the output as a response? (the paper\'s rating)"/>',
              f'  <Choices name="{RATING}" toName="output" choice="single-radio">']
    lines += [f'    <Choice value="{rating}" hint={quoteattr(text)}/>'
              for rating, text in RATING_TEXT.items()]
    lines += ['  </Choices>',
              '  <Header value="Reason (optional)"/>',
              f'  <TextArea name="{REASON}" toName="output" rows="2" maxSubmissions="1"/>',
              '</View>']
    return "\n".join(lines) + "\n"


def write_review_set(records: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """Write the task-import JSON and the labeling config into `out_dir`."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tasks_path = folder / TASKS_FILE
    write_text(tasks_path, json.dumps(task_import(records), ensure_ascii=False, indent=1))
    config_path = write_text(folder / CONFIG_FILE, labeling_config())
    return {"tasks": tasks_path, "config": config_path}


# ----------------------------------------------------------------------------- export → records
def read_export(path: str | Path) -> list[dict]:
    """The tasks of a Label Studio JSON export file."""
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise LabelStudioExportError(f"{path} is not JSON: {error}") from None
    if not isinstance(payload, list):
        raise LabelStudioExportError(
            f"{path} is not a Label Studio JSON export (expected a list of tasks)")
    return payload


def _choices(results: Iterable[Mapping], name: str) -> list[str]:
    return [str(choice) for result in results if result.get("from_name") == name
            for choice in (result.get("value") or {}).get("choices") or []]


def _text(results: Iterable[Mapping], name: str) -> str:
    parts = [str(text) for result in results if result.get("from_name") == name
             for text in (result.get("value") or {}).get("text") or []]
    return " ".join(" ".join(parts).split())


def _reviewer(annotation: Mapping) -> str:
    who = annotation.get("completed_by")
    if isinstance(who, Mapping):
        who = who.get("email") or who.get("id")
    return f"label-studio:{who}" if who is not None else "label-studio"


def annotation_row(data: Mapping, annotation: Mapping) -> dict:
    """One person's answers to one record; a question left blank or answered twice is None
    with the reason in `parse_error`."""
    results = annotation.get("result") or []
    row: dict = {name: data[name] for name in RECORD_FIELDS}
    problems = []
    for question in QUESTIONS:
        picked = set(_choices(results, str(question)))
        if picked in ({YES}, {NO}):
            row[str(question)] = picked == {YES}
        else:
            row[str(question)] = None
            problems.append(f"{question}: no answer" if not picked
                            else f"{question}: {sorted(picked)} is not one of yes, no")
    ratings = set(_choices(results, RATING))
    row["rating"] = ratings.pop() if len(ratings) == 1 and ratings <= set(
        QualityRating.values()) else None
    row["reason"] = _text(results, REASON)
    row["parse_error"] = "; ".join(problems) or None
    row["source"] = ReviewSource.HUMAN
    row["raw_answer"] = json.dumps(results, ensure_ascii=False, sort_keys=True)
    row["reviewer"] = _reviewer(annotation)
    return row


def human_records(tasks: Sequence[Mapping]) -> pd.DataFrame:
    """Every submitted, not-cancelled annotation of the export as a review record.

    Tasks nobody annotated are left out; a task without sipipeline's record fields is an
    error (the export is of another project).
    """
    rows = []
    for task in tasks:
        data = task.get("data") or {}
        missing = [name for name in RECORD_FIELDS if name not in data]
        if missing:
            raise LabelStudioExportError(
                f"task {task.get('id')} lacks {missing}: not a task of a sipipeline review set")
        for annotation in task.get("annotations") or []:
            if annotation.get("was_cancelled"):
                continue
            rows.append(annotation_row(data, annotation))
    return review_records(rows)
