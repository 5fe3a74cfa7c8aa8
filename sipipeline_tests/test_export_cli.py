"""`sipipeline export`: options, format choices, and a run against a stored round."""

from __future__ import annotations

import argparse

import pytest

from sipipeline.export_cli import add_export_parser
from sipipeline.export_cli import main as export_main
from sipipeline_tests.support.export_cases import (
    expected_records,
    export_pool,
    read_jsonl,
    store_rounds,
)


def test_export_command_line(tmp_path, capsys):
    pool = export_pool(10)
    store_rounds(tmp_path / "store", {"round_001": pool[pool["round"] <= 1], "round_002": pool})
    code = export_main(["--format", "openai_chat", "--format", "parquet", "--out",
                        str(tmp_path / "out"), "--include-seeds", "--validation-fraction", "0.1",
                        "--seed", "5", "--storage", str(tmp_path / "store")])
    assert code == 0
    assert "openai_chat:" in capsys.readouterr().out
    rows = [r for split in ("train", "validation")
            for r in read_jsonl(tmp_path / "out" / f"openai_chat/{split}.jsonl")]
    assert len(rows) == len(expected_records(pool, include_seeds=True))
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
