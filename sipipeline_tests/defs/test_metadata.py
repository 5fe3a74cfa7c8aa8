"""Metadata helpers: value conversion and previews that model text cannot break."""

import re

import dagster as dg
import pandas as pd

from sipipeline.defs.metadata import metadata_from, metadata_value, preview_markdown


def test_plain_values_become_typed_metadata():
    converted = metadata_from({"n": 3, "share": 0.5, "ok": True, "name": "x", "ids": ["a"]},
                              prefix="stats/")
    assert converted["stats/n"] == dg.MetadataValue.int(3)
    assert converted["stats/share"] == dg.MetadataValue.float(0.5)
    assert converted["stats/ok"] == dg.MetadataValue.bool(True)
    assert converted["stats/name"] == dg.MetadataValue.text("x")
    assert converted["stats/ids"] == dg.MetadataValue.json(["a"])
    already = dg.MetadataValue.md("# t")
    assert metadata_value(already) is already


def test_a_pipe_or_a_newline_in_model_text_cannot_break_the_preview_table():
    frame = pd.DataFrame({"instruction": ["Compare a | b\nand c", "x" * 300], "n": [1, 2]})
    table = preview_markdown(frame, ["instruction", "n"])
    lines = table.splitlines()
    assert len(lines) == 4  # header, rule, two rows
    unescaped_pipes = [len(re.findall(r"(?<!\\)\|", line)) for line in lines]
    assert unescaped_pipes == [3, 3, 3, 3]  # two columns on every line
    assert "a \\| b and c" in lines[2]
    assert "…" in lines[3] and len(lines[3]) < 200
    assert preview_markdown(frame.iloc[:0], ["instruction"]) == "_(no rows)_"
