"""Fine-tuning exports: every file reloads with its users' library and round-trips the records."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from sipipeline.export_cli import add_export_parser
from sipipeline.export_cli import main as export_main
from sipipeline.method.schema import POOL_SCHEMA, pool_frame, to_arrow
from sipipeline.reporting.exports import (
    FILE_NAMES,
    PROMPT_TEMPLATES,
    deduplicate,
    export_dataset,
    openai_chat_example,
    read_latest_pool,
    render_prompt_completion,
    template_choices,
    validate_openai_chat_example,
)


def _machine(task_id, round_number, instruction, instances, is_classification=False):
    return {"task_id": task_id, "instruction": instruction, "origin": "machine",
            "round": round_number, "is_classification": is_classification,
            "instances": [{"input": i, "output": o} for i, o in instances],
            "model": "gemma3-270m-q4", "request_id": f"r-{task_id}", "in_context_ids": [],
            "max_rouge_l": 0.3, "mean_rouge_l": 0.1, "most_similar": []}


def _pool(n_machine: int = 40) -> pd.DataFrame:
    rows = [{"task_id": f"seed_task_{i}", "instruction": f"Seed instruction number {i}.",
             "origin": "seed", "round": 0, "is_classification": i == 0,
             "instances": [{"input": "" if i % 2 else f"seed input {i}",
                            "output": f"seed output {i}"}]} for i in range(3)]
    for k in range(n_machine):
        instances = [(f"input {k} – ünïcode \"quoted\"\nsecond line" if k % 3 else "",
                      f"output {k}"), (f"another input {k}", f"another output {k}")]
        rows.append(_machine(f"mi-{k:04d}", 1 + k % 2, f"Instruction {k}: do   thing {k}.",
                             instances[: 1 + k % 2], is_classification=k % 5 == 0))
    # an exact duplicate of mi-0000's record (after whitespace normalisation) in a later round
    rows.append(_machine("mi-dup", 2, "Instruction 0: do thing 0.", [("", "output 0")]))
    return pool_frame(rows)


def _expected_records(pool: pd.DataFrame, include_seeds: bool) -> set[tuple[str, str, str]]:
    records = set()
    for task in pool.itertuples():
        if task.origin == "seed" and not include_seeds:
            continue
        for instance in task.instances:
            records.add((" ".join(task.instruction.split()), " ".join(instance["input"].split()),
                         " ".join(instance["output"].split())))
    return records


def _jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    pool = _pool()
    out = tmp_path_factory.mktemp("export")
    written = export_dataset(pool, out, include_seeds=False, validation_fraction=0.2, seed=7,
                             card_info={"model": "gemma3-270m-q4", "api_key": "sk-SECRET-1",
                                        "parameters": {"temperature": 0.7,
                                                       "openai_api_key": "sk-SECRET-2"}})
    return pool, out, written


def test_all_formats_written(exported):
    _, out, written = exported
    assert set(written) == {"jsonl", "prompt_completion", "alpaca", "openai_chat", "parquet",
                            "card", "manifest"}
    for fmt in ("jsonl", "prompt_completion", "alpaca", "openai_chat", "parquet"):
        assert written[fmt] == [str(out / FILE_NAMES[fmt].format(split=s))
                                for s in ("train", "validation")]


def test_jsonl_round_trips_deduplicated_records_and_split_by_task(exported):
    pool, out, _ = exported
    train = _jsonl(out / "jsonl/train.jsonl")
    validation = _jsonl(out / "jsonl/validation.jsonl")
    every = train + validation
    assert all(set(r) == {"instruction", "input", "output"} for r in every)
    triples = [(" ".join(r["instruction"].split()), " ".join(r["input"].split()),
                " ".join(r["output"].split())) for r in every]
    assert len(triples) == len(set(triples))  # the duplicate task's record is gone
    assert set(triples) == _expected_records(pool, include_seeds=False)
    assert not any(r["instruction"].startswith("Seed") for r in every)
    assert validation and train
    assert not {r["instruction"] for r in train} & {r["instruction"] for r in validation}
    assert any("\n" in r["input"] and "ü" in r["input"] for r in every)  # text kept verbatim


def test_alpaca_is_one_json_array_in_the_same_order(exported):
    _, out, _ = exported
    for split in ("train", "validation"):
        alpaca = json.loads((out / f"alpaca/{split}.json").read_text(encoding="utf-8"))
        assert isinstance(alpaca, list)
        assert alpaca == _jsonl(out / f"jsonl/{split}.jsonl")


def test_prompt_completion_uses_the_seeded_template_mix(exported):
    _, out, _ = exported
    records = _jsonl(out / "jsonl/train.jsonl")
    pairs = _jsonl(out / "prompt_completion/train.jsonl")
    choices = template_choices(len(records), 7, "train")
    assert len(pairs) == len(records)
    for record, pair, choice in zip(records, pairs, choices, strict=True):
        assert set(pair) == {"prompt", "completion"}
        assert pair == render_prompt_completion(record["instruction"], record["input"],
                                                record["output"], choice)
        assert record["instruction"] in pair["prompt"]
        assert pair["completion"].removesuffix("<|endoftext|>").strip() == record["output"]
        if not record["input"]:
            assert "Input:" not in pair["prompt"]
    assert len(set(choices)) >= 4  # the templates really are mixed


def test_prompt_templates_cover_marker_variants():
    rendered = [render_prompt_completion("Add 2 and 3.", "2, 3", "5", i)
                for i in range(len(PROMPT_TEMPLATES))]
    assert len({r["prompt"] for r in rendered}) == len(PROMPT_TEMPLATES)
    assert any(r["prompt"].startswith("Task:") for r in rendered)
    assert any(not r["prompt"].startswith("Task:") for r in rendered)
    assert any("Input: 2, 3" in r["prompt"] for r in rendered)
    assert all(r["completion"].endswith("<|endoftext|>") for r in rendered)


def test_openai_chat_lines_validate_field_by_field(exported):
    _, out, _ = exported
    for split in ("train", "validation"):
        records = _jsonl(out / f"jsonl/{split}.jsonl")
        lines = _jsonl(out / f"openai_chat/{split}.jsonl")
        assert len(lines) == len(records)
        for record, line in zip(records, lines, strict=True):
            assert list(line) == ["messages"]
            user, assistant = line["messages"]
            assert set(user) == {"role", "content"} and set(assistant) == {"role", "content"}
            assert user["role"] == "user" and assistant["role"] == "assistant"
            assert isinstance(user["content"], str) and isinstance(assistant["content"], str)
            expected_user = (f"{record['instruction']}\n\n{record['input']}"
                             if record["input"] else record["instruction"])
            assert user["content"] == expected_user
            assert assistant["content"] == record["output"]
            assert validate_openai_chat_example(line) == []


def test_openai_chat_validator_rejects_malformed_examples():
    good = openai_chat_example("Say hi.", "", "hi", system_prompt="Be brief.")
    assert [m["role"] for m in good["messages"]] == ["system", "user", "assistant"]
    assert validate_openai_chat_example(good) == []
    assert validate_openai_chat_example([]) == ["line is not a JSON object"]
    assert validate_openai_chat_example({"messages": []})
    assert validate_openai_chat_example({"messages": [{"role": "user", "content": "x"}]})
    assert validate_openai_chat_example(
        {"messages": [{"role": "user", "content": "x"}, {"role": "bot", "content": "y"}]})
    assert validate_openai_chat_example(
        {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "y"}]})
    assert validate_openai_chat_example({"messages": good["messages"], "extra": 1})


def test_parquet_loads_with_datasets_or_pyarrow(exported, monkeypatch, tmp_path):
    _, out, _ = exported
    expected = {split: _jsonl(out / f"jsonl/{split}.jsonl") for split in ("train", "validation")}
    try:
        import datasets
    except ImportError:
        loaded = {split: pq.read_table(out / FILE_NAMES["parquet"].format(split=split)
                                       ).to_pylist() for split in expected}
    else:
        monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
        dataset = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf"))
        assert set(dataset) == {"train", "validation"}
        loaded = {split: dataset[split].to_list() for split in expected}
    for split, rows in loaded.items():
        assert [{k: r[k] for k in ("instruction", "input", "output")} for r in rows] == \
            expected[split]
        assert all(r["origin"] == "machine" and r["round"] in (1, 2) for r in rows)
        assert all(r["task_id"].startswith("mi-") and r["model"] for r in rows)


def test_dataset_card_has_counts_licence_and_no_secrets(exported):
    _, out, _ = exported
    card = (out / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n") and "configs:" in card
    assert "data/train-00000-of-00001.parquet" in card
    n_train = len(_jsonl(out / "jsonl/train.jsonl"))
    assert f"| train records | {n_train:,} |" in card
    assert "| duplicates removed | 1 |" in card
    assert "Apache-2.0" in card and "Gemma Terms of Use" in card
    assert "| temperature | 0.7 |" in card
    for path in out.rglob("*"):
        if path.is_file():
            assert b"sk-SECRET" not in path.read_bytes(), path


def test_exports_are_reproducible_and_seed_dependent(tmp_path):
    pool = _pool()
    first = export_dataset(pool, tmp_path / "a", seed=3, validation_fraction=0.2)
    export_dataset(pool, tmp_path / "b", seed=3, validation_fraction=0.2)
    export_dataset(pool, tmp_path / "c", seed=4, validation_fraction=0.2)
    manifest = {name: json.loads((tmp_path / name / "export_manifest.json").read_text())
                for name in "abc"}
    assert manifest["a"]["files"] == manifest["b"]["files"]
    for fmt_paths in first.values():
        for path in fmt_paths:
            relative = Path(path).relative_to(tmp_path / "a")
            assert (tmp_path / "b" / relative).read_bytes() == Path(path).read_bytes()
    assert manifest["a"]["files"]["jsonl/train.jsonl"] != manifest["c"]["files"][
        "jsonl/train.jsonl"]


def test_split_of_a_task_survives_later_rounds(tmp_path):
    small, large = _pool(20), _pool(60)
    export_dataset(small, tmp_path / "small", formats=["jsonl"], validation_fraction=0.3)
    export_dataset(large, tmp_path / "large", formats=["jsonl"], validation_fraction=0.3)

    def side(folder):
        return {r["instruction"]: split for split in ("train", "validation")
                for r in _jsonl(tmp_path / folder / f"jsonl/{split}.jsonl")}

    small_side, large_side = side("small"), side("large")
    assert all(large_side[instruction] == s for instruction, s in small_side.items())


def test_include_seeds_and_format_selection(tmp_path):
    pool = _pool(6)
    written = export_dataset(pool, tmp_path, formats=["alpaca", "jsonl"], include_seeds=True,
                             validation_fraction=0.0)
    assert set(written) == {"jsonl", "alpaca", "card", "manifest"}
    train = _jsonl(tmp_path / "jsonl/train.jsonl")
    assert _jsonl(tmp_path / "jsonl/validation.jsonl") == []
    assert {(r["instruction"], r["input"], r["output"]) for r in train} >= {
        ("Seed instruction number 0.", "seed input 0", "seed output 0")}
    assert "configs:" not in (tmp_path / "README.md").read_text()
    with pytest.raises(ValueError, match="unknown export format"):
        export_dataset(pool, tmp_path, formats=["csv"])
    with pytest.raises(ValueError, match="validation_fraction"):
        export_dataset(pool, tmp_path, validation_fraction=1.0)


def test_deduplicate_keeps_the_first_occurrence():
    records = pd.DataFrame({"instruction": ["a  b", "a b", "a b"], "input": ["", " ", "x"],
                            "output": ["o", "o", "o"], "task_id": ["t1", "t2", "t3"]})
    assert list(deduplicate(records)["task_id"]) == ["t1", "t3"]


def _store(base: Path, rounds: dict[str, pd.DataFrame]) -> None:
    folder = base / "filtered_tasks"
    folder.mkdir(parents=True)
    for key, frame in rounds.items():
        pq.write_table(to_arrow(frame, POOL_SCHEMA), folder / f"{key}.parquet")


def test_read_latest_pool_takes_the_highest_round(tmp_path):
    pool = _pool(10)
    _store(tmp_path, {"round_001": pool[pool["round"] <= 1], "round_002": pool,
                      "round_010": pool.iloc[:5]})
    latest, key = read_latest_pool(str(tmp_path))
    assert key == "round_010" and len(latest) == 5
    assert isinstance(latest["instances"].iloc[0], list)
    with pytest.raises(FileNotFoundError, match="no materialized round"):
        read_latest_pool(str(tmp_path / "empty"))


def test_export_command_line(tmp_path, capsys):
    pool = _pool(10)
    _store(tmp_path / "store", {"round_001": pool[pool["round"] <= 1], "round_002": pool})
    code = export_main(["--format", "openai_chat", "--format", "parquet", "--out",
                        str(tmp_path / "out"), "--include-seeds", "--validation-fraction", "0.1",
                        "--seed", "5", "--storage", str(tmp_path / "store")])
    assert code == 0
    assert "openai_chat:" in capsys.readouterr().out
    rows = [r for split in ("train", "validation")
            for r in _jsonl(tmp_path / "out" / f"openai_chat/{split}.jsonl")]
    assert len(rows) == len(_expected_records(pool, include_seeds=True))
    assert not (tmp_path / "out" / "jsonl").exists()
    assert "filtered_tasks/round_002.parquet" in (tmp_path / "out" / "README.md").read_text()
    assert export_main(["--out", str(tmp_path / "o2"), "--storage", str(tmp_path / "none")]) == 1


def test_export_parser_options():
    parser = argparse.ArgumentParser()
    add_export_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", "--out", "x"])
    assert args.formats is None and args.seed == 42 and args.validation_fraction == 0.05
    assert args.include_seeds is False and args.storage is None and callable(args.handler)
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "--out", "x", "--format", "csv"])
