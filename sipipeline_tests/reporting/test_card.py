"""The dataset card: counts, licence and terms, and no secrets."""

from __future__ import annotations

from sipipeline.reporting.exports import export_dataset
from sipipeline_tests.support.export_cases import export_pool, read_jsonl


def test_dataset_card_has_counts_licence_and_no_secrets(exported):
    _, out, _ = exported
    card = (out / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n") and "configs:" in card
    assert "data/train-00000-of-00001.parquet" in card
    n_train = len(read_jsonl(out / "jsonl/train.jsonl"))
    assert f"| train records | {n_train:,} |" in card
    assert "| duplicates removed | 1 |" in card
    assert "Apache-2.0" in card and "Gemma Terms of Use" in card
    assert "| temperature | 0.7 |" in card
    for path in out.rglob("*"):
        if path.is_file():
            assert b"sk-SECRET" not in path.read_bytes(), path


def test_card_tables_keep_pipes_and_line_breaks_inside_cells(tmp_path):
    export_dataset(export_pool(6), tmp_path, formats=["jsonl"],
                   card_info={"source": "proxy | vLLM\nsecond line"})
    card = (tmp_path / "README.md").read_text(encoding="utf-8")
    row = next(line for line in card.splitlines() if line.startswith("| source |"))
    assert row == "| source | proxy \\| vLLM second line |"
