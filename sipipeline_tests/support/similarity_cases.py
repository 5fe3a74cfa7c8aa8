"""Shared inputs and comparisons for the similarity tests: tricky texts, exact ties, near-
duplicates, both keep/drop loops, and the "same result as the oracle" assertion."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

from hypothesis import strategies as st

from sipipeline.similarity import fast, kernels

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
LOOPS = ["python"] + (["numba"] if kernels.numba is not None else [])


@contextmanager
def decision_loop(name: str) -> Iterator[None]:
    """Run the filter with the given keep/drop loop."""
    with patch.object(fast, "USE_NUMBA", name == "numba"):  # forced, any size
        yield


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
