"""The quality table and agreement as Markdown and as an escaped HTML page."""

from __future__ import annotations

from sipipeline.method import quality
from sipipeline.method.review import review_records
from sipipeline.reporting import review_report

VERDICTS = review_records([
    {"record_id": "r1", "task_id": "t1", "instruction": "<script>alert(1)</script> | pipe",
     "input": "", "output": "x", "valid_instruction": True, "appropriate_input": True,
     "correct_output": True},
    {"record_id": "r2", "task_id": "t2", "instruction": "Sum 2 and 2.", "input": "",
     "output": "5", "valid_instruction": True, "appropriate_input": True,
     "correct_output": False, "reason": "wrong sum"},
    {"record_id": "r3", "task_id": "t3", "instruction": "Hm.", "input": "", "output": "",
     "parse_error": "no verdict lines (refusal or free text)"},
])


def test_quality_markdown_puts_each_share_beside_the_paper():
    text = review_report.quality_markdown(quality.quality_table(VERDICTS))
    lines = text.splitlines()
    assert lines[0] == "| question | share | 95% CI | answered | unparseable | paper |"
    valid = next(line for line in lines if "valid task" in line)
    low, high = quality.wilson_interval(2, 2)
    assert (f"| 100% | {quality.percent(low)}–{quality.percent(high)} | 2 | 1 | 92% |"
            in valid)
    correct = next(line for line in lines if "correct and acceptable" in line)
    assert "| 50% |" in correct and correct.endswith("| 58% |")


def test_agreement_markdown_shows_undefined_kappa_as_a_dash():
    agreement = quality.agreement_table(VERDICTS, VERDICTS)
    text = review_report.agreement_markdown(agreement)
    assert "| valid_instruction | 2 | 100% | – |" in text  # one label only: undefined
    assert "| correct_output | 2 | 100% | 1.00 |" in text


def test_the_html_page_escapes_model_text(tmp_path):
    table = quality.quality_table(VERDICTS)
    path = review_report.render_review_report(
        "Quality <round_001>", "intro", table, VERDICTS, tmp_path / "r" / "q.html",
        quality.agreement_table(VERDICTS, VERDICTS))
    page = path.read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "Quality &lt;round_001&gt;" in page
    assert "92%" in page and "79%" in page and "58%" in page and "54%" in page
    assert "Cohen&#x27;s kappa" in page or "Cohen's kappa" in page
    assert "wrong sum" in page and "no verdict lines" in page
