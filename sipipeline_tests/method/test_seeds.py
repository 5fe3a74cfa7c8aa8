import json

import pytest

from sipipeline.method.seeds import SeedFileError, load_seed_tasks
from sipipeline.paths import DEFAULT_SEED_FILE


def test_the_175_seed_tasks_load_into_the_pool_schema():
    seeds = load_seed_tasks(DEFAULT_SEED_FILE)
    assert len(seeds) == 175
    assert seeds["task_id"].is_unique
    assert int(seeds["is_classification"].sum()) == 26
    assert set(seeds["origin"]) == {"seed"} and set(seeds["round"]) == {0}
    assert all(len(instances) == 1 for instances in seeds["instances"])
    assert sum(1 for i in seeds["instances"] if i[0]["input"] == "") == 50


def _write(tmp_path, lines):
    path = tmp_path / "seeds.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = {"id": "a", "name": "a", "instruction": "Do a thing well.",
        "instances": [{"input": "", "output": "done"}], "is_classification": False}


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        ("{not json", "invalid JSON"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "instruction"} | {"id": "b"}),
         "missing field 'instruction'"),
        (json.dumps(GOOD | {"id": "b", "instruction": "   "}), "empty 'instruction'"),
        (json.dumps(GOOD), "duplicate id 'a' (first seen on line 1)"),
        (json.dumps(GOOD | {"id": "b", "is_classification": "no"}),
         "field 'is_classification' must be a bool"),
        (json.dumps(GOOD | {"id": "b", "instances": []}), "at least one instance"),
        (json.dumps(GOOD | {"id": "b", "instances": [{"input": "x"}]}),
         "instance 0 must be an object"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_a_malformed_seed_file_names_file_line_and_problem(tmp_path, bad_line, expected):
    path = _write(tmp_path, [json.dumps(GOOD), bad_line])
    with pytest.raises(SeedFileError) as error:
        load_seed_tasks(path)
    assert str(error.value).startswith(f"{path}:2: ")
    assert expected in str(error.value)
    assert error.value.line == 2


def test_missing_and_empty_seed_files_are_reported(tmp_path):
    with pytest.raises(SeedFileError, match="seed file not found"):
        load_seed_tasks(tmp_path / "nope.jsonl")
    with pytest.raises(SeedFileError, match="no seed tasks"):
        load_seed_tasks(_write(tmp_path, [""]))
