"""Export formats: the registry, prompt/completion template mixing and OpenAI chat lines."""

from __future__ import annotations

import argparse
import json

import pandas as pd
import pytest

from sipipeline.export_cli import add_export_parser
from sipipeline.reporting.exports import export_dataset
from sipipeline.reporting.formats import (
    PROMPT_TEMPLATES,
    REGISTRY,
    ExportFormat,
    format_choices,
    openai_chat_example,
    render_prompt_completion,
    resolve_formats,
    template_choices,
    validate_openai_chat_example,
    write_split,
)
from sipipeline_tests.support.export_cases import export_pool, read_jsonl


def test_prompt_completion_uses_the_seeded_template_mix(exported):
    _, out, _ = exported
    records = read_jsonl(out / "jsonl/train.jsonl")
    pairs = read_jsonl(out / "prompt_completion/train.jsonl")
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
        records = read_jsonl(out / f"jsonl/{split}.jsonl")
        lines = read_jsonl(out / f"openai_chat/{split}.jsonl")
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


def test_resolve_formats_expands_all_in_registry_order_and_rejects_unknown_names():
    assert resolve_formats("all") == list(REGISTRY)
    assert resolve_formats(["parquet", "jsonl", "parquet"]) == ["jsonl", "parquet"]
    with pytest.raises(ValueError, match="unknown export format 'csv'; choose from all, jsonl"):
        resolve_formats(["jsonl", "csv"])


def test_a_registered_format_is_offered_and_written_everywhere(tmp_path, monkeypatch):
    """The registry is the one place: a new entry reaches the CLI choices, "all" and the files."""

    def write_tsv(frame, path, options):
        path.write_text("".join(f"{i}\t{o}\n" for i, o in zip(frame["instruction"],
                                                              frame["output"], strict=True)))

    tsv = ExportFormat("tsv", "tsv/{split}.tsv", write_tsv, "tab-separated")
    monkeypatch.setitem(REGISTRY, "tsv", tsv)
    assert format_choices()[-1] == "tsv"
    parser = argparse.ArgumentParser()
    add_export_parser(parser.add_subparsers(dest="command"))
    assert parser.parse_args(["export", "--out", "x", "--format", "tsv"]).formats == ["tsv"]
    written = export_dataset(export_pool(6), tmp_path, formats=["all"])
    assert written["tsv"] == [str(tmp_path / "tsv/train.tsv"),
                              str(tmp_path / "tsv/validation.tsv")]
    assert (tmp_path / "tsv/train.tsv").read_text().count("\t") == len(
        read_jsonl(tmp_path / "jsonl/train.jsonl"))
    manifest = json.loads((tmp_path / "export_manifest.json").read_text())
    assert "tsv/train.tsv" in manifest["files"]


def test_an_invalid_chat_line_names_the_file_and_leaves_none(tmp_path):
    frame = pd.DataFrame({"instruction": ["Say hi.", "Say bye."], "input": ["", ""],
                          "output": ["hi", " "]})
    target = tmp_path / "openai_chat" / "train.jsonl"
    with pytest.raises(ValueError, match=f"{target} line 2: message 1: content must be"):
        write_split("openai_chat", frame, target, "train", seed=1)
    assert list(target.parent.iterdir()) == []
