"""Index preparation: token codes, the exact LCS bound, prefix lengths and the rarity order."""

from __future__ import annotations

from unittest.mock import patch

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import LCSseq

from sipipeline.similarity import index
from sipipeline.similarity.python_loops import fmeasure

TOKEN_LISTS = st.lists(st.lists(st.sampled_from("abcdefgh"), max_size=12), max_size=8)


@settings(max_examples=60, deadline=None)
@given(threshold=st.floats(0, 1, exclude_max=True), total=st.integers(2, 60))
def test_required_lcs_never_prunes_a_pair_above_the_threshold(threshold, total) -> None:
    """Any (L, m, n) whose rouge-score float beats the threshold has L ≥ Treq(m + n)."""
    required = index.required_lcs_table(threshold, total)
    for m in range(1, total):
        n = total - m
        for lcs in range(1, min(m, n) + 1):
            if fmeasure(lcs, n, m) > threshold:
                assert lcs >= required[total], (lcs, m, n)


@settings(max_examples=60, deadline=None)
@given(threshold=st.floats(0, 1, exclude_max=True), n=st.integers(0, 40))
def test_prefix_length_is_the_least_requirement_over_all_partners(threshold, n) -> None:
    required = index.required_lcs_table(threshold, 4 * n + 1)
    qualifying = [int(required[m + n]) for m in range(1, 3 * n + 1)
                  if required[m + n] <= min(m, n)]
    expected = n - min(qualifying) + 1 if qualifying else 0
    assert index.prefix_length(n, required) == expected


@given(token_lists=TOKEN_LISTS, tiny_alphabet=st.booleans())
def test_codes_identify_tokens_and_keep_every_lcs(token_lists, tiny_alphabet) -> None:
    """Equal codes ⇔ equal tokens, and the encoded texts have the token lists' LCS (str and
    integer-list encodings alike)."""
    with patch.object(index, "MAX_STRING_ALPHABET", 3 if tiny_alphabet else 0x10F800):
        sequences, codes = index.encode(token_lists)
    flat = [token for tokens in token_lists for token in tokens]
    assert len(codes) == len(flat)
    for i, token in enumerate(flat):
        for j, other in enumerate(flat):
            assert (codes[i] == codes[j]) == (token == other)
    for a, first in zip(sequences, token_lists, strict=True):
        for b, second in zip(sequences, token_lists, strict=True):
            assert LCSseq.similarity(a, b) == LCSseq.similarity(first, second)


@given(token_lists=TOKEN_LISTS, threshold=st.floats(0, 1, exclude_max=True))
def test_ranks_order_each_texts_occurrences_globally(token_lists, threshold) -> None:
    """Per text, ranks ascend; two occurrences share a rank iff they are the same token's k-th
    occurrence; rarer occurrences (in fewer texts) rank first, ties by (k, token code)."""
    _, codes = index.encode(token_lists)
    code_of = dict(zip([t for tokens in token_lists for t in tokens], codes.tolist(), strict=True))
    prepared = index.prepare(codes, [len(t) for t in token_lists], threshold)
    occurrences = []  # (text, (token, k)) in rank-sorted order per text
    for text, tokens in enumerate(token_lists):
        seen: dict[str, int] = {}
        keys = []
        for token in tokens:
            keys.append((token, seen.get(token, 0)))
            seen[token] = seen.get(token, 0) + 1
        start, end = prepared.offsets[text], prepared.offsets[text + 1]
        ranks = prepared.ranks[start:end].tolist()
        assert ranks == sorted(ranks)
        occurrences.append((text, keys, ranks))
    texts_with = {}
    for _, keys, _ in occurrences:
        for key in set(keys):
            texts_with[key] = texts_with.get(key, 0) + 1
    rank_of_key = {}
    for _, keys, ranks in occurrences:
        in_rank_order = sorted(keys, key=lambda k: (texts_with[k], k[1], code_of[k[0]]))
        for key, rank in zip(in_rank_order, ranks, strict=True):
            assert rank_of_key.setdefault(key, rank) == rank
    assert len(set(rank_of_key.values())) == len(rank_of_key)
    by_rank = sorted(rank_of_key, key=rank_of_key.get)
    assert [texts_with[key] for key in by_rank] == sorted(texts_with[key] for key in by_rank)


@given(codes=st.lists(st.integers(0, 40), max_size=60))
def test_frequency_order_numbers_tokens_most_frequent_first_ties_by_code(codes) -> None:
    counts = {code: codes.count(code) for code in set(codes)}
    number = {code: n for n, code in enumerate(sorted(counts, key=lambda c: (-counts[c], c)))}
    renumbered = index.frequency_ordered_codes(np.asarray(codes, dtype=np.int64))
    assert renumbered.dtype == np.int64
    assert renumbered.tolist() == [number[code] for code in codes]


WORDS = st.lists(st.sampled_from(["cat", "dog", "sat", "mat", "on", "the", "a", "x1"]),
                 max_size=10).map(" ".join)


@settings(max_examples=80, deadline=None)
@given(pool=st.lists(WORDS, max_size=8), candidates=st.lists(WORDS, max_size=6),
       pool_alphabet=st.sampled_from([0x10F800, 4, 2]))
def test_a_pool_encoded_once_gives_the_codes_of_encoding_everything_together(
        pool, candidates, pool_alphabet) -> None:
    """Codes, sequences and lengths equal one joint encoding, whether the pool, the candidates
    or neither overflow the code-point alphabet."""
    with patch.object(index, "MAX_STRING_ALPHABET", pool_alphabet):
        encoded = index.encode_pool(pool)
        tokens = [index.rouge_tokens(text) for text in [*pool, *candidates]]
        joint_sequences, joint_codes = index.encode(tokens)
        sequences, codes, lengths = index.encode_with_pool(
            encoded, [index.rouge_tokens(text) for text in candidates])
    assert lengths == [len(t) for t in tokens]
    if isinstance(joint_sequences[0] if joint_sequences else "", str) == isinstance(
            sequences[0] if sequences else "", str):
        assert codes.tolist() == joint_codes.tolist()
    for a, first in zip(sequences, tokens, strict=True):
        for b, second in zip(sequences, tokens, strict=True):
            assert LCSseq.similarity(a, b) == LCSseq.similarity(first, second)


def _same_encoding(a: index.EncodedPool, b: index.EncodedPool) -> None:
    assert len(a) == len(b) and a.lengths == b.lengths
    assert a.codes.tolist() == b.codes.tolist() and a.sequences == b.sequences
    assert a.alphabet == b.alphabet


@settings(max_examples=60, deadline=None)
@given(pool=st.lists(WORDS, max_size=8), added=st.lists(WORDS, max_size=6))
def test_an_extended_pool_is_the_encoding_of_the_next_pool_and_survives_a_round_trip(
        pool, added, tmp_path_factory) -> None:
    path = str(tmp_path_factory.mktemp("index") / "pool.npz")
    extended = index.encode_pool(pool).extended(added)
    _same_encoding(extended, index.encode_pool(pool + added))
    assert extended.save(path)
    _same_encoding(index.EncodedPool.load(path), extended)


def test_a_saved_encoding_keeps_codes_past_the_surrogate_gap(tmp_path) -> None:
    words = [f"w{i}" for i in range(0xD800 + 50)]
    texts = [" ".join(words[i:i + 200]) for i in range(0, len(words), 200)]
    encoded = index.encode_pool(texts[:-3]).extended(texts[-3:])
    assert int(encoded.codes.max()) >= 0xE000  # past the gap
    assert encoded.save(str(tmp_path / "big.npz"))
    _same_encoding(index.EncodedPool.load(str(tmp_path / "big.npz")), index.encode_pool(texts))


def test_the_integer_fallback_extends_but_is_not_saved(tmp_path) -> None:
    with patch.object(index, "MAX_STRING_ALPHABET", 2):
        encoded = index.encode_pool(["a b c", "d"]).extended(["a e"])
    assert encoded.alphabet is None and not encoded.save(str(tmp_path / "no.npz"))
    assert encoded.token_lists() == [["a", "b", "c"], ["d"], ["a", "e"]]
