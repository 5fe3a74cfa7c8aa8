"""The novelty filter must reproduce rouge-score 0.1.2 decisions, scores and a stable top-k."""

from __future__ import annotations

import json
import math
import random
from contextlib import contextmanager
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer

from sipipeline.paths import DEFAULT_SEED_FILE
from sipipeline.similarity import (
    fast,
    max_rouge_l_to,
    novelty_filter,
    rouge_l_fmeasure,
    rouge_tokens,
)
from sipipeline.similarity.oracle import reference_novelty_filter, reference_tokens

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

# Characters that exercise the tokeniser: ASCII, digits, punctuation, letters whose lower() is
# multi-character or ASCII (İ, the Kelvin sign), ligatures, accents, CJK, emoji, whitespace.
TRICKY_ALPHABET = st.sampled_from(
    list("abcxyzABCXYZ0189 .,:;'-_/\n\t") + ["é", "ï", "İ", "\u212a", "ﬁ", "ß", "水", "😀", "Ω"]
)
WORDS = ["the", "a", "task", "write", "list", "of", "3", "cats", "dogs", "give", "me", "x"]


@st.composite
def word_texts(draw, max_words: int = 12) -> str:
    """Texts over a tiny vocabulary, so near-duplicates and ties are frequent."""
    words = draw(st.lists(st.sampled_from(WORDS), max_size=max_words))
    separators = draw(
        st.lists(st.sampled_from([" ", " ", ", ", "!", "-", " 水 "]), min_size=len(words))
    )
    return "".join(w + s for w, s in zip(words, separators, strict=False))


ANY_TEXT = st.one_of(word_texts(), st.text(TRICKY_ALPHABET, max_size=40), st.text(max_size=20))

# The keep/drop loop runs compiled (numba) when available, else as Python: test both.
LOOPS = ["python"] + (["numba"] if fast.numba is not None else [])


@contextmanager
def decision_loop(name: str):
    """Run the filter with the given keep/drop loop."""
    with patch.object(fast, "USE_NUMBA", name == "numba"):  # forced, any size
        yield


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


def assert_same_result(actual, expected) -> None:
    """Same keep flags and top-k; scores equal to 1e-12 (they are in fact the same floats)."""
    assert len(actual) == len(expected)
    assert actual["keep"].tolist() == expected["keep"].tolist()
    for got, want in zip(actual["max_rouge_l"], expected["max_rouge_l"], strict=True):
        assert abs(got - want) <= 1e-12
    for got, want in zip(actual["mean_rouge_l"], expected["mean_rouge_l"], strict=True):
        assert (math.isnan(got) and math.isnan(want)) or abs(got - want) <= 1e-12
    for got, want in zip(actual["most_similar"], expected["most_similar"], strict=True):
        assert [item["index"] for item in got] == [item["index"] for item in want]
        for got_item, want_item in zip(got, want, strict=True):
            assert abs(got_item["score"] - want_item["score"]) <= 1e-12


@given(ANY_TEXT)
def test_tokens_match_rouge_score(text: str) -> None:
    assert rouge_tokens(text) == SCORER._tokenizer.tokenize(text)


@given(ANY_TEXT, ANY_TEXT)
def test_pair_score_is_rouge_score_value(a: str, b: str) -> None:
    expected = SCORER.score(a, b)["rougeL"].fmeasure
    assert rouge_l_fmeasure(a, b) == expected
    assert rouge_l_fmeasure(b, a) == expected


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
    tokens = [fast.rouge_tokens(text) for text in texts]
    # A tiny alphabet forces the integer-list fallback past a few distinct tokens.
    with patch.object(fast, "MAX_STRING_ALPHABET", 4 if tiny_alphabet else 0x10F800):
        sequences, codes = fast._encode(tokens)
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


@pytest.mark.parametrize("loop", LOOPS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    candidates=st.lists(ANY_TEXT, max_size=12),
    pool=st.lists(ANY_TEXT, max_size=8),
    threshold=st.one_of(st.just(0.7), st.floats(-0.5, 1.5)),
    top_k=st.integers(1, 6),
    describe_dropped=st.booleans(),
)
def test_filter_matches_rouge_score_reference(
    loop, candidates, pool, threshold, top_k, describe_dropped
) -> None:
    expected = reference_novelty_filter(
        candidates, pool, threshold, top_k, describe_dropped=describe_dropped
    )
    with decision_loop(loop):
        actual = novelty_filter(
            candidates, pool, threshold, top_k, describe_dropped=describe_dropped
        )
    assert_same_result(actual, expected)


@pytest.mark.parametrize("loop", LOOPS)
@settings(max_examples=25, deadline=None)
@given(
    base=st.lists(st.sampled_from(WORDS), min_size=60, max_size=140),
    edits=st.lists(st.tuples(st.integers(0, 139), st.sampled_from(WORDS + ["new"])), max_size=40),
)
def test_long_texts_beyond_one_machine_word(loop, base, edits) -> None:
    """Instructions with more than 64 tokens need the multi-word LCS path."""
    edited = list(base)
    for position, word in edits:
        edited[position % len(edited)] = word
    pool = [" ".join(base), " ".join(base[:64]), " ".join(base[:63])]
    candidates = [" ".join(edited), " ".join(edited[::2]), " ".join(base[5:]), " ".join(edited[3:])]
    with decision_loop(loop):
        actual = novelty_filter(candidates, pool, describe_dropped=True)
    assert_same_result(actual, reference_novelty_filter(candidates, pool, describe_dropped=True))


def near_duplicates(texts: list[str], rng: random.Random, count: int) -> list[str]:
    """Copies of texts with a few words dropped, repeated, swapped or replaced."""
    words = [w for text in texts for w in text.split()]
    result = []
    for _ in range(count):
        tokens = rng.choice(texts).split()
        for _ in range(rng.randint(0, 4)):
            operation = rng.randrange(4)
            at = rng.randrange(len(tokens))
            if operation == 0 and len(tokens) > 1:
                del tokens[at]
            elif operation == 1:
                tokens.insert(at, rng.choice(words))
            elif operation == 2:
                tokens[at] = rng.choice(words)
            else:
                tokens.insert(at, tokens[at])
        result.append(" ".join(tokens))
    return result


def exact_tie_pair(m: int, n: int, lcs: int, tag: str) -> tuple[str, str]:
    """A pool item of m tokens and a candidate of n tokens whose LCS is exactly `lcs`."""
    pool_item = [f"{tag}p{i}" for i in range(m)]
    candidate = pool_item[:lcs] + [f"{tag}c{i}" for i in range(n - lcs)]
    return " ".join(pool_item), " ".join(candidate).capitalize() + "?"


# 2L/(m+n) is exactly 7/10 for all of these; the reference float lands on both sides of 0.7.
TIES = {
    (7, 13, 7): 0.7000000000000001,  # dropped
    (10, 10, 7): 0.7,  # kept
    (23, 37, 21): 0.6999999999999998,  # kept
    (29, 51, 28): 0.7000000000000002,  # dropped
}


@pytest.mark.parametrize("loop", LOOPS)
def test_exact_threshold_ties_follow_the_reference_float(loop) -> None:
    pool, candidates = [], []
    for number, (m, n, lcs) in enumerate(TIES):
        item, candidate = exact_tie_pair(m, n, lcs, f"t{number}")
        assert rouge_l_fmeasure(candidate, item) == TIES[(m, n, lcs)]
        pool.append(item)
        candidates.append(candidate)
    with decision_loop(loop):
        result = novelty_filter(candidates, pool)
    assert result["keep"].tolist() == [score <= 0.7 for score in TIES.values()]
    assert result["max_rouge_l"].tolist() == list(TIES.values())
    assert_same_result(result, reference_novelty_filter(candidates, pool))


def test_texts_without_tokens_are_never_rejected() -> None:
    candidates = ["", "水", "水", "?!", "😀 😀", "Give a joke.", "Give a joke!", ""]
    result = novelty_filter(candidates, ["", "水", "Give a joke"])
    assert result["keep"].tolist() == [True, True, True, True, True, False, False, True]
    assert result.loc[0, "max_rouge_l"] == 0.0
    assert result.loc[5, "most_similar"] == [{"index": 2, "score": 1.0}]
    assert_same_result(result, reference_novelty_filter(candidates, ["", "水", "Give a joke"]))


def test_kept_candidates_join_the_comparison_set_in_order() -> None:
    pool = ["Write a poem about the sea."]
    candidates = ["Tell me a story about a dragon.", "Tell me a story about a dragon!", "Hi"]
    result = novelty_filter(candidates, pool, top_k=3)
    assert result["keep"].tolist() == [True, False, True]
    assert result.loc[1, "max_rouge_l"] == 1.0
    assert result.loc[1, "most_similar"] == [{"index": 1, "score": 1.0}]  # len(pool) + 0
    assert [item["index"] for item in result.loc[2, "most_similar"]] == [0, 1]
    assert math.isnan(result.loc[1, "mean_rouge_l"])
    assert result["keep"].dtype == bool


def test_empty_inputs() -> None:
    assert len(novelty_filter([], ["a b c"])) == 0
    result = novelty_filter(["a b c", "a b c"], [])
    assert result["keep"].tolist() == [True, False]
    assert result.loc[0, "max_rouge_l"] == 0.0 and math.isnan(result.loc[0, "mean_rouge_l"])
    assert result.loc[0, "most_similar"] == []


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("threshold", [0.7, 0.5])
def test_seed_tasks_with_near_duplicates_match_reference(loop, threshold: float) -> None:
    seeds = [json.loads(line)["instruction"] for line in DEFAULT_SEED_FILE.open()]
    rng = random.Random(20230)
    tie_pool, tie_candidates = zip(
        *(exact_tie_pair(m, n, lcs, f"s{i}") for i, (m, n, lcs) in enumerate(TIES)), strict=True
    )
    pool = seeds[:120] + list(tie_pool)
    candidates = near_duplicates(seeds, rng, 140) + seeds[120:] + list(tie_candidates)
    candidates += ["", "…", "水水", seeds[0].upper(), seeds[1] + " " + seeds[1]]
    rng.shuffle(candidates)
    expected = reference_novelty_filter(candidates, pool, threshold)
    assert 0 < expected["keep"].sum() < len(candidates)
    with decision_loop(loop):
        actual = novelty_filter(candidates, pool, threshold)
    assert_same_result(actual, expected)


def test_max_rouge_l_to_fixed_references_matches_rouge_score():
    seeds = ["Write a poem about the ocean.", "Give me a list of three red fruits.",
             "Naïve café ﬁle: 3.14 don't", "", "一二三"]
    candidates = ["Write a short poem about the sea and the ocean.", "three fruits, red",
                  "A list of fruits; give me three!", "café 3 14 dont", "一二三", "",
                  "Write a poem about the ocean.", "ocean the about poem a write"]
    got = max_rouge_l_to(candidates, seeds)
    for candidate, value in zip(candidates, got, strict=True):
        expected = max(SCORER.score(candidate, seed)["rougeL"].fmeasure for seed in seeds)
        assert value == expected, candidate
