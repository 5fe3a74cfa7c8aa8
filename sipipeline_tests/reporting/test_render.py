"""The round report: PNG plots and a self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

from sipipeline.reporting.render import render_round_report


def test_report_writes_pngs_and_a_self_contained_html(two_rounds, tmp_path):
    pool, _, stats = two_rounds
    files = render_round_report(stats, pool, 2, tmp_path / "report")
    assert {"html", "lengths", "rouge_l_to_seed", "funnel"} <= set(files)
    for name, path in files.items():
        if name != "html":
            with open(path, "rb") as handle:
                assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    page = Path(files["html"]).read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == len(files) - 1
    assert "<script" not in page and "<link" not in page and 'src="http' not in page
    assert "Translate this sentence into French please." in page or "mi-" in page
    assert "<table>" in page and "round 2" in page
    assert "paper (GPT-3)</th>" in page and ">52,445</td>" in page  # every column rendered
