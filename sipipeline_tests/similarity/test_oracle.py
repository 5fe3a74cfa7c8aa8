"""The oracle's pair score (the public `rouge_l_fmeasure`) is rouge-score's value."""

from __future__ import annotations

from hypothesis import given
from rouge_score import rouge_scorer

from sipipeline.similarity import rouge_l_fmeasure
from sipipeline_tests.support.similarity_cases import ANY_TEXT

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


@given(ANY_TEXT, ANY_TEXT)
def test_pair_score_is_rouge_score_value(a: str, b: str) -> None:
    expected = SCORER.score(a, b)["rougeL"].fmeasure
    assert rouge_l_fmeasure(a, b) == expected
    assert rouge_l_fmeasure(b, a) == expected
