"""Fine-tuning exports: every file reloads with its users' library and round-trips the records."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sipipeline.reporting import formats
from sipipeline.reporting.exports import export_dataset
from sipipeline.reporting.formats import REGISTRY
from sipipeline_tests.support.disk_full import fail_midway, fill_disk_on_open
from sipipeline_tests.support.export_cases import (
    expected_records,
    export_pool,
    read_jsonl,
)


def test_all_formats_written(exported):
    _, out, written = exported
    assert set(written) == {"jsonl", "prompt_completion", "alpaca", "openai_chat", "parquet",
                            "card", "manifest"}
    for fmt in ("jsonl", "prompt_completion", "alpaca", "openai_chat", "parquet"):
        assert written[fmt] == [str(out / REGISTRY[fmt].file_name.format(split=s))
                                for s in ("train", "validation")]

def test_jsonl_round_trips_deduplicated_records_and_split_by_task(exported):
    pool, out, _ = exported
    train = read_jsonl(out / "jsonl/train.jsonl")
    validation = read_jsonl(out / "jsonl/validation.jsonl")
    every = train + validation
    assert all(set(r) == {"instruction", "input", "output"} for r in every)
    triples = [(" ".join(r["instruction"].split()), " ".join(r["input"].split()),
                " ".join(r["output"].split())) for r in every]
    assert len(triples) == len(set(triples))  # the duplicate task's record is gone
    assert set(triples) == expected_records(pool, include_seeds=False)
    assert not any(r["instruction"].startswith("Seed") for r in every)
    assert validation and train
    assert not {r["instruction"] for r in train} & {r["instruction"] for r in validation}
    assert any("\n" in r["input"] and "ü" in r["input"] for r in every)  # text kept verbatim

def test_alpaca_is_one_json_array_in_the_same_order(exported):
    _, out, _ = exported
    for split in ("train", "validation"):
        alpaca = json.loads((out / f"alpaca/{split}.json").read_text(encoding="utf-8"))
        assert isinstance(alpaca, list)
        assert alpaca == read_jsonl(out / f"jsonl/{split}.jsonl")

def test_parquet_loads_with_datasets_or_pyarrow(exported, monkeypatch, tmp_path):
    _, out, _ = exported
    expected = {split: read_jsonl(out / f"jsonl/{split}.jsonl")
                for split in ("train", "validation")}
    try:
        import datasets
    except ImportError:
        loaded = {split: pq.read_table(out / REGISTRY["parquet"].file_name.format(split=split)
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

def test_exports_are_reproducible_and_seed_dependent(tmp_path):
    pool = export_pool()
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
    small, large = export_pool(20), export_pool(60)
    export_dataset(small, tmp_path / "small", formats=["jsonl"], validation_fraction=0.3)
    export_dataset(large, tmp_path / "large", formats=["jsonl"], validation_fraction=0.3)

    def side(folder):
        return {r["instruction"]: split for split in ("train", "validation")
                for r in read_jsonl(tmp_path / folder / f"jsonl/{split}.jsonl")}

    small_side, large_side = side("small"), side("large")
    assert all(large_side[instruction] == s for instruction, s in small_side.items())

def test_include_seeds_and_format_selection(tmp_path):
    pool = export_pool(6)
    written = export_dataset(pool, tmp_path, formats=["alpaca", "jsonl"], include_seeds=True,
                             validation_fraction=0.0)
    assert set(written) == {"jsonl", "alpaca", "card", "manifest"}
    train = read_jsonl(tmp_path / "jsonl/train.jsonl")
    assert read_jsonl(tmp_path / "jsonl/validation.jsonl") == []
    assert {(r["instruction"], r["input"], r["output"]) for r in train} >= {
        ("Seed instruction number 0.", "seed input 0", "seed output 0")}
    assert "configs:" not in (tmp_path / "README.md").read_text()
    with pytest.raises(ValueError, match="unknown export format"):
        export_dataset(pool, tmp_path, formats=["csv"])
    with pytest.raises(ValueError, match="validation_fraction"):
        export_dataset(pool, tmp_path, validation_fraction=1.0)

@pytest.mark.parametrize("name", ["train.jsonl", "validation.json", "README.md",
                                  "export_manifest.json"])
def test_a_full_disk_midway_keeps_every_previous_export_file(tmp_path, monkeypatch, name):
    pool = export_pool(10)
    export_dataset(pool, tmp_path, validation_fraction=0.2)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    attempts = fill_disk_on_open(monkeypatch, name)
    with pytest.raises(OSError, match="No space left"):
        export_dataset(export_pool(20), tmp_path, validation_fraction=0.2)
    assert attempts
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert set(after) == set(before)  # no partial file left behind
    targeted = [path for path in before if name in path.name]
    assert targeted
    assert all(after[path] == before[path] for path in targeted)


def test_a_full_disk_while_writing_parquet_keeps_the_previous_file(tmp_path, monkeypatch):
    export_dataset(export_pool(10), tmp_path, formats=["parquet"])
    train = tmp_path / REGISTRY["parquet"].file_name.format(split="train")
    before = train.read_bytes()
    monkeypatch.setattr(formats.pq, "write_table", fail_midway(lambda path: before))
    with pytest.raises(OSError, match="No space left"):
        export_dataset(export_pool(20), tmp_path, formats=["parquet"])
    assert train.read_bytes() == before
    assert pq.read_table(train).num_rows > 0
    assert sorted(p.name for p in train.parent.iterdir()) == [
        "train-00000-of-00001.parquet", "validation-00000-of-00001.parquet"]
