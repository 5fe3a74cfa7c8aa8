"""The round report: PNG plots and a self-contained HTML page, each replaced whole."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure

from sipipeline.reporting.render import render_round_report
from sipipeline_tests.support.disk_full import fail_midway, fill_disk_on_open


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


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_full_disk_while_writing_the_html_keeps_the_previous_report(two_rounds, tmp_path,
                                                                     monkeypatch):
    pool, round_1, stats = two_rounds
    out = tmp_path / "report"
    render_round_report(round_1, pool, 2, out)
    before = _listing(out)
    attempts = fill_disk_on_open(monkeypatch, "report.html")
    with pytest.raises(OSError, match="No space left"):
        render_round_report(stats, pool, 2, out)
    assert attempts
    assert set(_listing(out)) == set(before)  # no partial file left behind
    assert _listing(out)["report.html"] == before["report.html"]
    assert _listing(out)["report.html"].endswith(b"</html>\n")


def test_a_full_disk_while_writing_a_plot_keeps_the_previous_png(two_rounds, tmp_path,
                                                                 monkeypatch):
    pool, _, stats = two_rounds
    out = tmp_path / "report"
    render_round_report(stats, pool, 2, out)
    before = _listing(out)
    monkeypatch.setattr(Figure, "savefig", fail_midway(lambda path: before["lengths.png"]))
    with pytest.raises(OSError, match="No space left"):
        render_round_report(stats, pool, 2, out)
    assert _listing(out) == before
