"""Both keep/drop loops (Python + rapidfuzz, and the numba kernel) report exactly the pairs a
brute-force rouge-score scan finds."""

from __future__ import annotations

from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer

from sipipeline.similarity import fast, index, rouge_tokens
from sipipeline.similarity.oracle import reference_tokens
from sipipeline_tests.support.similarity_cases import ANY_TEXT, LOOPS, word_texts


def brute_force_decisions(texts: list[str], num_pool: int, threshold: float):
    """Keep flags and every (candidate, earlier text, score) above threshold, via rouge-score."""
    tokens = [reference_tokens(text) for text in texts]
    comparison = list(range(num_pool))
    keep, hits = [], set()
    for text in range(num_pool, len(texts)):
        found = set()
        for item in comparison:
            score = float(rouge_scorer._score_lcs(tokens[text], tokens[item]).fmeasure)
            if score > threshold:
                found.add((text - num_pool, item, score))
        keep.append(not found)
        hits |= found
        if not found:
            comparison.append(text)
    return keep, hits


@pytest.mark.parametrize("loop", LOOPS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.lists(st.one_of(word_texts(), word_texts(max_words=40), ANY_TEXT), max_size=30),
    pool_share=st.floats(0, 1),
    threshold=st.one_of(st.just(0.7), st.floats(0, 1, exclude_max=True)),
    tiny_alphabet=st.booleans(),
)
def test_decisions_find_every_pair_above_threshold(
    loop, texts, pool_share, threshold, tiny_alphabet
) -> None:
    """The pruned loops report exactly the pairs a brute-force rouge-score scan finds."""
    num_pool = int(pool_share * len(texts))
    tokens = [rouge_tokens(text) for text in texts]
    # A tiny alphabet forces the integer-list fallback past a few distinct tokens.
    with patch.object(index, "MAX_STRING_ALPHABET", 4 if tiny_alphabet else 0x10F800):
        sequences, codes = index.encode(tokens)
    keep, (candidates, items, scores) = fast.decide(
        sequences, codes, [len(t) for t in tokens], num_pool, threshold,
        use_numba=loop == "numba",
    )
    expected_keep, expected_hits = brute_force_decisions(texts, num_pool, threshold)
    assert keep.tolist() == expected_keep
    assert set(zip(candidates.tolist(), items.tolist(), scores.tolist(), strict=True)) == (
        expected_hits
    )
    assert len(candidates) == len(expected_hits)
