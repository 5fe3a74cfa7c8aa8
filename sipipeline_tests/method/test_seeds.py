import json

import pytest

from sipipeline.method.seeds import (
    MAX_SEED_FILE_BYTES,
    MAX_SEED_LINE_BYTES,
    SeedFileError,
    load_seed_tasks,
)
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


def _write_bytes(tmp_path, data: bytes):
    path = tmp_path / "seeds.jsonl"
    path.write_bytes(data)
    return path


def _line(**changes) -> bytes:
    return json.dumps(GOOD | changes, ensure_ascii=False).encode("utf-8") + b"\n"


def test_bytes_that_are_not_utf8_are_reported_with_file_and_line(tmp_path):
    latin1 = json.dumps(GOOD | {"id": "b", "instruction": "Say café."}).encode("utf-8")
    latin1 = latin1.replace(b"caf\\u00e9", "café".encode("latin-1"))
    path = _write_bytes(tmp_path, _line() + latin1 + b"\n")
    with pytest.raises(SeedFileError) as error:
        load_seed_tasks(path)
    assert str(error.value).startswith(f"{path}:2: not UTF-8 text (byte 0xe9 at byte ")
    assert error.value.line == 2


def test_a_directory_is_reported_as_a_directory(tmp_path):
    with pytest.raises(SeedFileError, match="is a directory") as error:
        load_seed_tasks(tmp_path)
    assert "not found" not in str(error.value)


def test_a_byte_order_mark_and_windows_line_ends_are_accepted(tmp_path):
    data = b"\xef\xbb\xbf" + _line().replace(b"\n", b"\r\n") + _line(id="b", instruction="Ok?")
    seeds = load_seed_tasks(_write_bytes(tmp_path, data))
    assert list(seeds["task_id"]) == ["a", "b"]
    assert list(seeds["instruction"]) == ["Do a thing well.", "Ok?"]


def test_a_line_over_the_limit_is_refused_without_reading_it_all(tmp_path):
    long_line = _line(id="b", instruction="x" * (MAX_SEED_LINE_BYTES + 10))
    path = _write_bytes(tmp_path, _line() + long_line)
    with pytest.raises(SeedFileError) as error:
        load_seed_tasks(path)
    assert str(error.value) == f"{path}:2: line longer than the {MAX_SEED_LINE_BYTES}-byte limit"
    # A line of exactly the limit is fine.
    filler = MAX_SEED_LINE_BYTES - len(_line(id="b", instruction="")) + 1
    exact = _line(id="b", instruction="y" * filler)
    assert len(exact) - 1 == MAX_SEED_LINE_BYTES
    assert len(load_seed_tasks(_write_bytes(tmp_path, _line() + exact))) == 2


def test_a_file_over_the_limit_is_refused_before_it_is_read(tmp_path):
    path = _write_bytes(tmp_path, b"not even json\n" * 20)
    with pytest.raises(SeedFileError) as error:
        load_seed_tasks(path, max_file_bytes=100)
    assert str(error.value) == f"{path}: is 280 bytes, over the 100-byte limit for a seed file"
    assert MAX_SEED_FILE_BYTES >= 32 * 1024 * 1024  # generous for real seed files


def test_the_same_instruction_under_two_ids_names_both_lines(tmp_path):
    path = _write(tmp_path, [json.dumps(GOOD), json.dumps(GOOD | {"id": "c", "instruction": "x?"}),
                             json.dumps(GOOD | {"id": "b", "instruction": "do a  THING, well!"})])
    with pytest.raises(SeedFileError) as error:
        load_seed_tasks(path)
    assert str(error.value).startswith(
        f"{path}:3: the instruction of 'b' duplicates that of 'a' on line 1")
