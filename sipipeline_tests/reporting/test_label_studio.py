"""Label Studio task import, labeling config and export parsing (no server: see
sipipeline_tests/e2e/test_review_roundtrip.py for the round trip through a real one)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from sipipeline.method import quality
from sipipeline.method.review import QUESTION_TEXT, QUESTIONS, review_records
from sipipeline.reporting import label_studio as ls

RECORDS = review_records([
    {"record_id": "in-1", "round": 2, "task_id": "mi-1", "instruction": "Add 2 and 3.",
     "input": "", "output": "5", "is_classification": False},
    {"record_id": "in-2", "round": 2, "task_id": "mi-2", "instruction": "Is it spam? <b>",
     "input": "WIN & \"FREE\" money", "output": "Yes", "is_classification": True},
])


def choice(name: str, value: str) -> dict:
    return {"from_name": name, "to_name": "output", "type": "choices",
            "value": {"choices": [value]}}


def annotation(answers: dict, rating: str | None = None, reason: str = "",
               who: object = 7, cancelled: bool = False) -> dict:
    result = [choice(name, value) for name, value in answers.items()]
    if rating:
        result.append(choice(ls.RATING, rating))
    if reason:
        result.append({"from_name": ls.REASON, "to_name": "output", "type": "textarea",
                       "value": {"text": [reason]}})
    return {"id": 1, "completed_by": who, "result": result, "was_cancelled": cancelled}


def exported(tasks: list[dict], annotations: list[list[dict]]) -> list[dict]:
    return [{"id": i + 1, "data": task["data"], "annotations": a}
            for i, (task, a) in enumerate(zip(tasks, annotations, strict=True))]


def test_task_import_carries_the_record_and_shows_empty_input():
    tasks = ls.task_import(RECORDS)
    assert [t["data"]["record_id"] for t in tasks] == ["in-1", "in-2"]
    assert tasks[0]["data"]["input_shown"] == "(no input)"
    assert tasks[0]["data"]["input"] == ""
    assert tasks[1]["data"]["is_classification"] is True
    json.dumps(tasks)  # plain JSON types only


def test_labeling_config_is_xml_with_the_three_questions_and_the_rating():
    root = ET.fromstring(ls.labeling_config())
    choices = {c.get("name"): [x.get("value") for x in c.findall("Choice")]
               for c in root.iter("Choices")}
    for question in QUESTIONS:
        assert choices[str(question)] == ["yes", "no"]
    assert choices[ls.RATING] == ["A", "B", "C", "D"]
    headers = [h.get("value") for h in root.iter("Header")]
    assert all(QUESTION_TEXT[q] in headers for q in QUESTIONS)
    assert {t.get("value") for t in root.iter("Text")} == {"$instruction", "$input_shown",
                                                           "$output"}


def test_write_review_set(tmp_path):
    written = ls.write_review_set(RECORDS, tmp_path / "set")
    assert json.loads(written["tasks"].read_text()) == ls.task_import(RECORDS)
    assert written["config"].read_text() == ls.labeling_config()


def test_export_becomes_human_records_with_problems_recorded():
    tasks = ls.task_import(RECORDS)
    export = exported(tasks, [
        [annotation({"valid_instruction": "yes", "appropriate_input": "yes",
                     "correct_output": "yes"}, rating="A", reason="fine",
                    who={"id": 3, "email": "ann@example.org"}),
         annotation({"valid_instruction": "no"}, who=4, cancelled=True)],
        [annotation({"valid_instruction": "yes", "correct_output": "no"}, rating="C")],
    ])
    human = ls.human_records(export)
    assert list(human["record_id"]) == ["in-1", "in-2"]  # the cancelled one is left out
    first, second = human.to_dict("records")
    assert (first["valid_instruction"], first["appropriate_input"],
            first["correct_output"]) == (True, True, True)
    assert first["rating"] == "A" and first["reason"] == "fine"
    assert first["reviewer"] == "label-studio:ann@example.org"
    assert pd.isna(first["parse_error"])
    assert second["appropriate_input"] is None
    assert second["correct_output"] is False
    assert "appropriate_input: no answer" in second["parse_error"]
    assert set(human["source"]) == {"human"}
    table = quality.quality_table(human).set_index("measure")
    assert table.loc["appropriate_input", "unparseable"] == 1


def test_unannotated_tasks_are_skipped_and_foreign_exports_refused(tmp_path):
    tasks = ls.task_import(RECORDS)
    assert ls.human_records(exported(tasks, [[], []])).empty
    with pytest.raises(ls.LabelStudioExportError, match="not a task of a sipipeline"):
        ls.human_records([{"id": 1, "data": {"text": "x"}, "annotations": []}])
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a list"}')
    with pytest.raises(ls.LabelStudioExportError, match="expected a list"):
        ls.read_export(bad)
    bad.write_text("not json")
    with pytest.raises(ls.LabelStudioExportError, match="not JSON"):
        ls.read_export(bad)
