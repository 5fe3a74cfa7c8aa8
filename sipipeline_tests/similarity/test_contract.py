"""The fast path's tokens are rouge-score's own."""

from __future__ import annotations

from hypothesis import given
from rouge_score import rouge_scorer

from sipipeline.similarity import rouge_tokens
from sipipeline_tests.support.similarity_cases import ANY_TEXT

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


@given(ANY_TEXT)
def test_tokens_match_rouge_score(text: str) -> None:
    assert rouge_tokens(text) == SCORER._tokenizer.tokenize(text)
