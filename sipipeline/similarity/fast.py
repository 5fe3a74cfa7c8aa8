"""Exact, fast ROUGE-L novelty filter: the same floats as rouge-score, orders of magnitude sooner.

How it stays exact:
- Tokens are rouge-score's (`[a-z0-9]+` of `str.lower()`). Each distinct token of a call becomes
  one Unicode code point, so a text becomes a short string whose character LCS is the token LCS
  (past 1.1M distinct tokens, texts become integer lists instead).
- Scores use the reference expression p = L/m, r = L/n, 2·p·r/(p+r) in float64, in the same
  order of IEEE operations (Python, NumPy and numba without fast-math agree bit for bit).
- Pruning uses exact integer bounds only. F > t needs L ≥ Treq(m+n) = ⌈c·(m+n)/2⌉ with c a hair
  under t (the float expression is within a few ulps of 2L/(m+n)), and L ≤ the multiset overlap.
  Order all token occurrences (token, k-th occurrence) globally, rarest first. If two texts share
  ≥ T occurrences, their first common occurrence sits at positions i, j with n − i ≥ T and
  m − j ≥ T (prefix filtering with a positional bound). So each text is indexed under its first
  `prefix` occurrences, a candidate probes its own, and only pairs passing
  min(n − i, m − j) ≥ Treq(m+n) (then an overlap bound) get an exact LCS.

How it is fast:
- Keep/drop runs candidate by candidate (each sees the ones kept before it) over that index.
- Full scores (max, mean, stable top-k of kept candidates) need every pair; they are computed
  after the decisions, for all rows at once.
- With numba, both loops are compiled: keep/drop with a bit-parallel LCS (Hyyrö; multi-word
  beyond 64 tokens), full scores by token co-occurrence (an item lacking a candidate token is
  unchanged by it, so each step touches only that token's postings), rows in parallel. Without
  numba (or for small calls, see USE_NUMBA), keep/drop runs as Python with rapidfuzz's LCS and
  full scores with rapidfuzz `cdist` on all cores: same results, slower.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from sipipeline.similarity.oracle import OUTPUT_COLUMNS

try:  # optional accelerator for the keep/drop loop
    import numba
except ImportError:  # pragma: no cover - exercised by forcing the Python loop in tests
    numba = None

# Distinct tokens that fit in a str, one per code point (surrogates skipped). A module constant
# so tests can shrink it to exercise the integer-list fallback.
MAX_STRING_ALPHABET = 0x110000 - 0x800
# Rows of full scores computed per rapidfuzz call (memory: rows × comparison set × 4 bytes).
METADATA_CHUNK_ROWS = 256
# Which loops run: True = compiled (numba), False = Python + rapidfuzz, None = compiled only
# for calls of at least COMPILED_MIN_PAIRS candidate × comparison pairs, so small calls never
# wait for the one-off compilation (~20 s, then cached on disk by numba).
USE_NUMBA: bool | None = None
COMPILED_MIN_PAIRS = 2_000_000
# Exact-arithmetic margin under the threshold: float F exceeds t only if 2L/(m+n) > t·(1-6e-16).
_MARGIN = Fraction(1, 10**12)
_TOKEN_RE = re.compile(r"[a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """Tokens exactly as rouge-score 0.1.2 makes them without a stemmer."""
    return _TOKEN_RE.findall(text.lower())


class _AlphabetFullError(Exception):
    """More distinct tokens than code points: fall back to integer sequences."""


class _Alphabet(dict):
    """token → one-character str, assigned on first sight."""

    def __missing__(self, token: str) -> str:
        code = len(self)
        if code >= MAX_STRING_ALPHABET:
            raise _AlphabetFullError
        char = chr(code + 0x800 if code >= 0xD800 else code)
        self[token] = char
        return char


def _encode(token_lists: list[list[str]]) -> tuple[list, np.ndarray]:
    """Each text as a rapidfuzz sequence (str of token code points, or list of token ids), and
    all their codes concatenated."""
    alphabet = _Alphabet()
    try:
        sequences = ["".join(map(alphabet.__getitem__, tokens)) for tokens in token_lists]
        joined = "".join(sequences).encode("utf-32-le")
        codes = np.frombuffer(joined, dtype=np.uint32).astype(np.int64)
    except _AlphabetFullError:
        ids: dict[str, int] = {}
        sequences = [
            [ids.setdefault(token, len(ids)) for token in tokens] for tokens in token_lists
        ]
        codes = np.fromiter((code for sequence in sequences for code in sequence), dtype=np.int64)
    return sequences, codes


@dataclass
class _Prepared:
    """Flat per-call arrays shared by both keep/drop loops (texts: pool, then candidates)."""

    lengths: np.ndarray  # tokens per text
    offsets: np.ndarray  # start of each text in `codes` / `ranks` (len = texts + 1)
    codes: np.ndarray  # token codes, text after text, in text order
    ranks: np.ndarray  # per text, its occurrences' global ranks ascending (rarest first)
    prefix: np.ndarray  # per text: how many of its rarest occurrences are indexed / probed
    required: np.ndarray  # by m + n: least LCS that can make F exceed the threshold


def _required_lcs_table(threshold: float, max_total: int) -> np.ndarray:
    """Treq(s) = max(1, ⌈c·s/2⌉) for s = 0..max_total, c = threshold − 1e-12 (exact)."""
    ratio = max(Fraction(threshold) - _MARGIN, Fraction(0))
    a, b = ratio.numerator, 2 * ratio.denominator
    return np.array([max(1, -((-a * s) // b)) for s in range(max_total + 1)], dtype=np.int64)


def _prefix_length(n: int, required: np.ndarray) -> int:
    """n − min over possible partner lengths m of Treq(m+n) + 1 (0 if no partner can qualify).

    A partner m qualifies when Treq(m+n) ≤ min(m, n); the least Treq is at the least such m,
    found by bisection (Treq grows at most 1 per unit, so the predicate is monotone).
    """
    if n == 0 or required[2 * n] > n:
        return 0
    low, high = 1, n
    while low < high:
        middle = (low + high) // 2
        if required[middle + n] <= middle:
            high = middle
        else:
            low = middle + 1
    return n - int(required[low + n]) + 1


def _prepare(codes: np.ndarray, lengths: list[int], threshold: float) -> _Prepared:
    """Global rarity order of token occurrences, each text's occurrences in that order."""
    lengths_array = np.asarray(lengths, dtype=np.int64)
    offsets = np.zeros(len(lengths_array) + 1, dtype=np.int64)
    np.cumsum(lengths_array, out=offsets[1:])
    text_of = np.repeat(np.arange(len(lengths_array), dtype=np.int64), lengths_array)
    total = len(codes)
    # k-th occurrence of its token within its text (0 for the first).
    order = np.lexsort((codes, text_of))  # stable: equal (text, code) stay in position order
    sorted_codes, sorted_texts = codes[order], text_of[order]
    run_starts = np.ones(total, dtype=bool)
    run_starts[1:] = (sorted_codes[1:] != sorted_codes[:-1]) | (
        sorted_texts[1:] != sorted_texts[:-1]
    )
    positions = np.arange(total, dtype=np.int64)
    occurrence = np.empty(total, dtype=np.int64)
    occurrence[order] = positions - np.maximum.accumulate(np.where(run_starts, positions, 0))
    # Rank occurrences by how many texts contain them (rarest first), ties by key.
    key = occurrence * (int(codes.max()) + 1 if total else 1) + codes
    unique_keys, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    rank_of_unique = np.empty(len(unique_keys), dtype=np.int64)
    rank_of_unique[np.lexsort((unique_keys, counts))] = np.arange(len(unique_keys))
    occurrence_rank = rank_of_unique[inverse.reshape(-1)]
    ranks = occurrence_rank[np.lexsort((occurrence_rank, text_of))]

    max_length = int(lengths_array.max()) if len(lengths_array) else 0
    required = _required_lcs_table(threshold, 2 * max_length + 1)
    prefix_by_length = np.zeros(max_length + 1, dtype=np.int64)
    for n in np.unique(lengths_array).tolist():
        prefix_by_length[n] = _prefix_length(n, required)
    return _Prepared(
        lengths=lengths_array,
        offsets=offsets,
        codes=codes,
        ranks=ranks,
        prefix=prefix_by_length[lengths_array],
        required=required,
    )


def _fmeasure(lcs: int, candidate_len: int, item_len: int) -> float:
    """rouge-score's F for a pair with L > 0, operation for operation."""
    precision = lcs / item_len
    recall = lcs / candidate_len
    return 2 * precision * recall / (precision + recall)


Hits = tuple[np.ndarray, np.ndarray, np.ndarray]  # candidate number, text number, score


def _decide_python(
    prepared: _Prepared, sequences: list, num_pool: int, threshold: float
) -> tuple[np.ndarray, Hits]:
    """Keep/drop in order; every (candidate, earlier text, score) above the threshold."""
    lengths = prepared.lengths.tolist()
    offsets = prepared.offsets.tolist()
    ranks = prepared.ranks.tolist()
    prefix = prepared.prefix.tolist()
    required = prepared.required.tolist()
    postings: dict[int, list[tuple[int, int]]] = {}
    keep: list[bool] = []
    hit_candidates: list[int] = []
    hit_texts: list[int] = []
    hit_scores: list[float] = []

    def index(text: int) -> None:
        start = offsets[text]
        for j in range(prefix[text]):
            postings.setdefault(ranks[start + j], []).append((text, j))

    for text in range(num_pool):
        index(text)
    for text in range(num_pool, len(lengths)):
        n, start, query = lengths[text], offsets[text], sequences[text]
        kept = True
        verified: set[int] = set()
        for i in range(prefix[text]):
            for item, j in postings.get(ranks[start + i], ()):
                if item in verified:
                    continue
                m = lengths[item]
                needed = required[m + n]
                if n - i < needed or m - j < needed:
                    continue
                verified.add(item)
                lcs = LCSseq.similarity(query, sequences[item], score_cutoff=needed)
                if lcs:
                    score = _fmeasure(lcs, n, m)
                    if score > threshold:
                        kept = False
                        hit_candidates.append(text - num_pool)
                        hit_texts.append(item)
                        hit_scores.append(score)
        keep.append(kept)
        if kept:
            index(text)
    return np.asarray(keep, dtype=bool), (
        np.asarray(hit_candidates, dtype=np.int64),
        np.asarray(hit_texts, dtype=np.int64),
        np.asarray(hit_scores, dtype=np.float64),
    )


_ONE = np.uint64(1)
_ALL_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
_SIX = np.uint64(6)
_LOW_SIX = np.uint64(63)
_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)
_S1, _S2, _S4, _S56 = np.uint64(1), np.uint64(2), np.uint64(4), np.uint64(56)


def _popcount(x):  # noqa: ANN001, ANN202 - compiled by numba
    x = x - ((x >> _S1) & _M1)
    x = (x & _M2) + ((x >> _S2) & _M2)
    x = (x + (x >> _S4)) & _M4
    return (x * _H01) >> _S56


def _multiword_step(vector, pattern, words, local, local_start, local_positions):  # noqa: ANN001, ANN202
    """Advance the multi-word bit-parallel LCS (Hyyrö) by one item token (texts > 64 tokens)."""
    for w in range(words):
        pattern[w] = 0
    for p in range(local_start[local], local_start[local + 1]):
        bit = local_positions[p]
        pattern[bit >> 6] |= _ONE << np.uint64(bit & 63)
    carry = np.uint64(0)
    for w in range(words):
        old = vector[w]
        u = old & pattern[w]
        total = old + u
        overflow = total < old
        total2 = total + carry
        carry = np.uint64(1) if (overflow or total2 < total) else np.uint64(0)
        vector[w] = total2 | (old - u)


def _fill_local_positions(codes, start, n, num_local, local_of_code, local_count, local_start,  # noqa: ANN001, ANN202, E501
                          local_positions):
    """Group the candidate's positions by local token id (counts in, offsets and lists out)."""
    local_start[0] = 0
    for local in range(num_local):
        local_start[local + 1] = local_start[local] + local_count[local]
        local_count[local] = 0
    for position in range(n):
        local = local_of_code[codes[start + position]]
        local_positions[local_start[local] + local_count[local]] = position
        local_count[local] += 1


def _multiword_lcs(vector, words, n):  # noqa: ANN001, ANN202
    """The LCS length held by a multi-word vector over a candidate of n tokens."""
    lcs = 0
    for w in range(words):
        bits = ~vector[w]
        if w == words - 1 and (n & 63) != 0:
            bits &= _ALL_ONES >> np.uint64(64 - (n & 63))
        lcs += np.int64(_popcount(bits))
    return lcs


def _decide_kernel(  # noqa: ANN001, ANN202, PLR0912, PLR0915 - compiled by numba
    num_pool, threshold, lengths, offsets, codes, ranks, prefix, required, postings_start
):
    """`_decide_python` as a numba loop, with one more exact filter before the LCS.

    Per candidate: the first posting seen for an item is its first common occurrence, so the
    positional bound is tested there; further postings count common occurrences inside both
    prefixes; those form a prefix of all common occurrences, so the overlap is at most
    count + min(n − 1 − i_last, m − 1 − j_last). Survivors get a bit-parallel LCS (Hyyrö) with
    the candidate as the bit pattern: one word for ≤ 64 tokens, several with carries beyond.
    `codes` are numbered most frequent first, so the lookups stay in cache.
    """
    num_texts = lengths.shape[0]
    num_elements = postings_start.shape[0] - 1
    posting_text = np.empty(postings_start[num_elements], dtype=np.int32)
    posting_position = np.empty(postings_start[num_elements], dtype=np.int32)
    posting_length = np.empty(postings_start[num_elements], dtype=np.int32)
    posting_fill = np.zeros(num_elements, dtype=np.int64)
    seen_for = np.full(num_texts, -1, dtype=np.int64)
    match_count = np.zeros(num_texts, dtype=np.int64)
    last_i = np.zeros(num_texts, dtype=np.int64)
    last_j = np.zeros(num_texts, dtype=np.int64)
    viable = np.empty(num_texts, dtype=np.int64)
    max_code = 0
    for code in codes:
        max_code = max(max_code, code)
    local_of_code = np.full(max_code + 1, -1, dtype=np.int32)
    max_length = 0
    for length in lengths:
        max_length = max(max_length, length)
    max_words = (max_length + 63) // 64 + 1
    single_word_mask = np.zeros(max_length + 1, dtype=np.uint64)  # per local token, n ≤ 64
    local_start = np.zeros(max_length + 2, dtype=np.int64)  # per local token, its positions
    local_positions = np.empty(max_length + 1, dtype=np.int64)
    local_count = np.zeros(max_length + 1, dtype=np.int64)
    pattern = np.zeros(max_words, dtype=np.uint64)
    vector = np.zeros(max_words, dtype=np.uint64)
    keep = np.zeros(num_texts - num_pool, dtype=np.bool_)
    capacity = 1024
    hit_candidates = np.empty(capacity, dtype=np.int64)
    hit_texts = np.empty(capacity, dtype=np.int64)
    hit_scores = np.empty(capacity, dtype=np.float64)
    num_hits = 0

    for text in range(num_texts):
        n = lengths[text]
        start = offsets[text]
        if text >= num_pool:
            kept = True
            num_viable = 0
            for i in range(prefix[text]):
                element = ranks[start + i]
                first = postings_start[element]
                for slot in range(first, first + posting_fill[element]):
                    item = posting_text[slot]
                    if seen_for[item] != text:
                        seen_for[item] = text
                        m = posting_length[slot]
                        needed = required[m + n]
                        j = posting_position[slot]
                        if n - i < needed or m - j < needed:
                            match_count[item] = 0
                        else:
                            match_count[item] = 1
                            last_i[item] = i
                            last_j[item] = j
                            viable[num_viable] = item
                            num_viable += 1
                    elif match_count[item] > 0:
                        match_count[item] += 1
                        last_i[item] = i
                        last_j[item] = posting_position[slot]
            if num_viable > 0:
                # Local ids for the candidate's distinct tokens and where each occurs.
                num_local = 0
                for position in range(n):
                    code = codes[start + position]
                    if local_of_code[code] < 0:
                        local_of_code[code] = num_local
                        local_count[num_local] = 0
                        single_word_mask[num_local] = 0
                        num_local += 1
                    local = local_of_code[code]
                    local_count[local] += 1
                    if n <= 64:
                        single_word_mask[local] |= _ONE << np.uint64(position)
                _fill_local_positions(codes, start, n, num_local, local_of_code, local_count,
                                      local_start, local_positions)
                words = (n + 63) // 64
                for v_index in range(num_viable):
                    item = viable[v_index]
                    m = lengths[item]
                    needed = required[m + n]
                    if match_count[item] + min(n - 1 - last_i[item], m - 1 - last_j[item]) < (
                        needed
                    ):
                        continue
                    item_start = offsets[item]
                    # Exact multiset overlap: merge the rest of both rank-sorted occurrence lists.
                    overlap = match_count[item]
                    a = last_i[item] + 1
                    b = last_j[item] + 1
                    while a < n and b < m and overlap + min(n - a, m - b) >= needed:
                        rank_a = ranks[start + a]
                        rank_b = ranks[item_start + b]
                        if rank_a == rank_b:
                            overlap += 1
                            a += 1
                            b += 1
                        elif rank_a < rank_b:
                            a += 1
                        else:
                            b += 1
                    if overlap < needed:
                        continue
                    # Item tokens absent from the candidate are unmatched: past m − needed of
                    # them the LCS cannot reach `needed`, so stop (lcs = 0 means "below").
                    misses_allowed = m - needed
                    lcs = 0
                    if words == 1:
                        v = _ALL_ONES
                        for position in range(m):
                            local = local_of_code[codes[item_start + position]]
                            if local >= 0:
                                u = v & single_word_mask[local]
                                v = (v + u) | (v - u)
                            else:
                                misses_allowed -= 1
                                if misses_allowed < 0:
                                    break
                        if misses_allowed >= 0:
                            lcs = n - np.int64(_popcount(v & (_ALL_ONES >> np.uint64(64 - n))))
                    else:
                        for w in range(words):
                            vector[w] = _ALL_ONES
                        for position in range(m):
                            local = local_of_code[codes[item_start + position]]
                            if local < 0:
                                misses_allowed -= 1
                                if misses_allowed < 0:
                                    break
                                continue
                            _multiword_step(vector, pattern, words, local, local_start,
                                            local_positions)
                        if misses_allowed >= 0:
                            lcs = _multiword_lcs(vector, words, n)
                    if lcs >= needed:
                        precision = lcs / m
                        recall = lcs / n
                        score = 2 * precision * recall / (precision + recall)
                        if score > threshold:
                            kept = False
                            if num_hits == capacity:
                                capacity *= 2
                                grown_c = np.empty(capacity, dtype=np.int64)
                                grown_t = np.empty(capacity, dtype=np.int64)
                                grown_s = np.empty(capacity, dtype=np.float64)
                                grown_c[:num_hits] = hit_candidates[:num_hits]
                                grown_t[:num_hits] = hit_texts[:num_hits]
                                grown_s[:num_hits] = hit_scores[:num_hits]
                                hit_candidates, hit_texts, hit_scores = grown_c, grown_t, grown_s
                            hit_candidates[num_hits] = text - num_pool
                            hit_texts[num_hits] = item
                            hit_scores[num_hits] = score
                            num_hits += 1
                for position in range(n):
                    local_of_code[codes[start + position]] = -1
            keep[text - num_pool] = kept
            if not kept:
                continue
        for j in range(prefix[text]):
            element = ranks[start + j]
            slot = postings_start[element] + posting_fill[element]
            posting_text[slot] = text
            posting_position[slot] = j
            posting_length[slot] = n
            posting_fill[element] += 1
    return keep, hit_candidates[:num_hits], hit_texts[:num_hits], hit_scores[:num_hits]


def _insert_top(top_positions, top_scores, count, top_k, position, score):  # noqa: ANN001, ANN202
    """Insert into a (score desc, position asc) list of at most top_k; returns the new count."""
    if count == top_k:
        worst = count - 1
        if score < top_scores[worst] or (
            score == top_scores[worst] and position > top_positions[worst]
        ):
            return count
        count -= 1
    slot = count
    while slot > 0 and (
        score > top_scores[slot - 1]
        or (score == top_scores[slot - 1] and position < top_positions[slot - 1])
    ):
        top_scores[slot] = top_scores[slot - 1]
        top_positions[slot] = top_positions[slot - 1]
        slot -= 1
    top_scores[slot] = score
    top_positions[slot] = position
    return count + 1


def _metadata_kernel(  # noqa: ANN001, ANN202, PLR0912, PLR0915 - compiled by numba
    row_texts, row_visible, comparison_texts, lengths, offsets, codes,
    postings_start, posting_item, posting_mask, long_items, top_k, num_threads,
):
    """max, mean and stable top-k of every row (a candidate against the first `visible`
    comparison items), rows in parallel.

    Items of ≤ 64 tokens: Hyyrö's bit-parallel LCS with the *item* as the bit pattern, driven by
    the candidate's tokens in order; an item lacking a token is unchanged by it, so each step
    touches only the items in that token's postings (sorted by comparison position, so the
    visible ones come first). Longer items: the candidate as a multi-word pattern.
    """
    num_rows = row_texts.shape[0]
    num_items = comparison_texts.shape[0]
    max_code = postings_start.shape[0] - 2
    max_scores = np.zeros(num_rows, dtype=np.float64)
    means = np.full(num_rows, np.nan)
    top_positions = np.full((num_rows, top_k), -1, dtype=np.int64)
    top_scores = np.zeros((num_rows, top_k), dtype=np.float64)
    max_length = 1
    for text in range(lengths.shape[0]):
        max_length = max(max_length, lengths[text])
    max_words = (max_length + 63) // 64 + 1
    for thread in numba.prange(num_threads):
        vector = np.full(num_items, _ALL_ONES, dtype=np.uint64)
        touched = np.empty(num_items, dtype=np.int64)
        local_of_code = np.full(max_code + 1, -1, dtype=np.int64)
        local_start = np.zeros(max_length + 2, dtype=np.int64)
        local_positions = np.empty(max_length + 1, dtype=np.int64)
        local_count = np.zeros(max_length + 1, dtype=np.int64)
        pattern = np.zeros(max_words, dtype=np.uint64)
        long_vector = np.zeros(max_words, dtype=np.uint64)
        row_top_positions = np.empty(top_k, dtype=np.int64)
        row_top_scores = np.empty(top_k, dtype=np.float64)
        for row in range(thread, num_rows, num_threads):
            visible = row_visible[row]
            if visible == 0:
                continue
            text = row_texts[row]
            n = lengths[text]
            start = offsets[text]
            num_touched = 0
            for j in range(n):
                code = codes[start + j]
                for slot in range(postings_start[code], postings_start[code + 1]):
                    item = posting_item[slot]
                    if item >= visible:
                        break
                    old = vector[item]
                    if old == _ALL_ONES:
                        touched[num_touched] = item
                        num_touched += 1
                    u = old & posting_mask[slot]
                    vector[item] = (old + u) | (old - u)
            total = 0.0
            count = 0
            for t in range(num_touched):
                item = touched[t]
                m = lengths[comparison_texts[item]]
                lcs = m - np.int64(_popcount(vector[item] & (_ALL_ONES >> np.uint64(64 - m))))
                vector[item] = _ALL_ONES
                precision = lcs / m
                recall = lcs / n
                score = 2 * precision * recall / (precision + recall)
                total += score
                count = _insert_top(row_top_positions, row_top_scores, count, top_k, item, score)
            if n > 0:
                # Items longer than 64 tokens: the candidate's tokens as a multi-word pattern.
                num_local = 0
                for position in range(n):
                    code = codes[start + position]
                    if local_of_code[code] < 0:
                        local_of_code[code] = num_local
                        local_count[num_local] = 0
                        num_local += 1
                    local_count[local_of_code[code]] += 1
                _fill_local_positions(codes, start, n, num_local, local_of_code, local_count,
                                      local_start, local_positions)
                words = (n + 63) // 64
                for index in range(long_items.shape[0]):
                    item = long_items[index]
                    if item >= visible:
                        break
                    item_text = comparison_texts[item]
                    m = lengths[item_text]
                    item_start = offsets[item_text]
                    for w in range(words):
                        long_vector[w] = _ALL_ONES
                    for position in range(m):
                        local = local_of_code[codes[item_start + position]]
                        if local < 0:
                            continue
                        _multiword_step(long_vector, pattern, words, local, local_start,
                                        local_positions)
                    lcs = _multiword_lcs(long_vector, words, n)
                    if lcs > 0:
                        precision = lcs / m
                        recall = lcs / n
                        score = 2 * precision * recall / (precision + recall)
                        total += score
                        count = _insert_top(
                            row_top_positions, row_top_scores, count, top_k, item, score
                        )
                for position in range(n):
                    local_of_code[codes[start + position]] = -1
            # Fewer than top_k items share a token: fill with score-0 items, lowest index first.
            candidate_item = 0
            while count < top_k and candidate_item < visible:
                already = False
                for t in range(count):
                    if row_top_positions[t] == candidate_item:
                        already = True
                if not already:
                    row_top_positions[count] = candidate_item
                    row_top_scores[count] = 0.0
                    count += 1
                candidate_item += 1
            for t in range(count):
                top_positions[row, t] = row_top_positions[t]
                top_scores[row, t] = row_top_scores[t]
            max_scores[row] = row_top_scores[0] if count > 0 else 0.0
            means[row] = total / visible
    return max_scores, means, top_positions, top_scores


if numba is not None:
    _popcount = numba.njit(cache=True, inline="always")(_popcount)
    _multiword_step = numba.njit(cache=True, inline="always")(_multiword_step)
    _multiword_lcs = numba.njit(cache=True, inline="always")(_multiword_lcs)
    _fill_local_positions = numba.njit(cache=True, inline="always")(_fill_local_positions)
    _compiled_kernel = numba.njit(cache=True)(_decide_kernel)
    _insert_top = numba.njit(cache=True)(_insert_top)
    _compiled_metadata = numba.njit(cache=True, parallel=True)(_metadata_kernel)
else:  # pragma: no cover
    _compiled_kernel = _compiled_metadata = None


def _frequency_ordered_codes(codes: np.ndarray) -> np.ndarray:
    """Tokens renumbered most frequent first, so the kernels' per-token lookups hit a small,
    cache-resident part of their tables."""
    unique_codes, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
    frequency_order = np.empty(len(unique_codes), dtype=np.int64)
    frequency_order[np.argsort(-counts, kind="stable")] = np.arange(len(unique_codes))
    return frequency_order[inverse.reshape(-1)]


def _decide_compiled(
    prepared: _Prepared, num_pool: int, threshold: float
) -> tuple[np.ndarray, Hits]:
    """The numba loop; postings are preallocated per occurrence (texts that could index it)."""
    indexed = np.arange(len(prepared.ranks)) - np.repeat(prepared.offsets[:-1], prepared.lengths)
    indexed = indexed < np.repeat(prepared.prefix, prepared.lengths)
    num_elements = int(prepared.ranks.max()) + 1 if len(prepared.ranks) else 0
    capacity = np.bincount(prepared.ranks[indexed], minlength=num_elements)
    postings_start = np.zeros(num_elements + 1, dtype=np.int64)
    np.cumsum(capacity, out=postings_start[1:])
    keep, candidates, texts, scores = _compiled_kernel(
        num_pool,
        float(threshold),
        prepared.lengths,
        prepared.offsets,
        _frequency_ordered_codes(prepared.codes),
        prepared.ranks,
        prepared.prefix,
        prepared.required,
        postings_start,
    )
    return keep, (candidates, texts, scores)


def _use_compiled(num_candidates: int, num_texts: int) -> bool:
    """Whether this call runs the numba loops (see USE_NUMBA)."""
    if numba is None or USE_NUMBA is False:
        return False
    return USE_NUMBA is True or num_candidates * num_texts >= COMPILED_MIN_PAIRS


def decide(
    sequences: list,
    codes: np.ndarray,
    lengths: list[int],
    num_pool: int,
    threshold: float,
    *,
    use_numba: bool | None = None,
) -> tuple[np.ndarray, Hits]:
    """Keep flags of texts[num_pool:] in order, and all (candidate, text, score) above threshold.

    Thresholds outside [0, 1) need no index: nothing beats t ≥ 1 (F ≤ 1; NaN never compares
    true), and every pair beats t < 0, so only a first candidate with an empty pool is kept.
    """
    num_candidates = len(lengths) - num_pool
    no_hits = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64))
    if not threshold < 1.0:
        return np.ones(num_candidates, dtype=bool), no_hits
    if threshold < 0.0:
        keep = np.zeros(num_candidates, dtype=bool)
        keep[:1] = num_pool == 0
        return keep, no_hits
    prepared = _prepare(codes, lengths, threshold)
    if _use_compiled(num_candidates, len(lengths)) if use_numba is None else use_numba:
        return _decide_compiled(prepared, num_pool, threshold)
    return _decide_python(prepared, sequences, num_pool, threshold)


def _metadata_compiled(
    rows: np.ndarray,
    row_visible: np.ndarray,
    comparison_texts: np.ndarray,
    lengths: np.ndarray,
    codes: np.ndarray,
    top_k: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Build token → (comparison position, position mask) postings and run the kernel."""
    kernel_codes = _frequency_ordered_codes(codes)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    item_lengths = lengths[comparison_texts]
    short = np.flatnonzero((item_lengths > 0) & (item_lengths <= 64))
    short_lengths = item_lengths[short]
    total = int(short_lengths.sum())
    first_token = np.repeat(offsets[comparison_texts[short]], short_lengths)
    within = np.arange(total, dtype=np.int64) - np.repeat(
        np.cumsum(short_lengths) - short_lengths, short_lengths
    )
    token_codes = kernel_codes[first_token + within]
    token_items = np.repeat(short, short_lengths)
    order = np.lexsort((token_items, token_codes))
    token_codes, token_items = token_codes[order], token_items[order]
    bits = np.left_shift(np.uint64(1), within[order].astype(np.uint64))
    group_starts = np.flatnonzero(
        np.concatenate(
            [[True], (token_codes[1:] != token_codes[:-1]) | (token_items[1:] != token_items[:-1])]
        )
    ) if total else np.empty(0, dtype=np.int64)
    posting_mask = (
        np.bitwise_or.reduceat(bits, group_starts) if total else np.empty(0, dtype=np.uint64)
    )
    posting_code = token_codes[group_starts]
    posting_item = token_items[group_starts]
    max_code = int(kernel_codes.max()) if len(kernel_codes) else 0
    postings_start = np.searchsorted(posting_code, np.arange(max_code + 2)).astype(np.int64)
    long_items = np.flatnonzero(item_lengths > 64).astype(np.int64)
    return _compiled_metadata(
        rows.astype(np.int64),
        row_visible.astype(np.int64),
        comparison_texts.astype(np.int64),
        lengths.astype(np.int64),
        offsets,
        kernel_codes,
        postings_start,
        posting_item.astype(np.int64),
        posting_mask.astype(np.uint64),
        long_items,
        int(top_k),
        int(numba.get_num_threads()),
    )


def _row_metadata(
    lcs_row: np.ndarray, item_lengths: np.ndarray, n: int, top_k: int
) -> tuple[float, float, list[tuple[int, float]]]:
    """max, mean and stable top-k (comparison positions) of one candidate's scores."""
    visible = len(lcs_row)
    if visible == 0:
        return 0.0, math.nan, []
    if top_k == 0:
        return _row_metadata(lcs_row, item_lengths, n, 1)[:2] + ([],)
    nonzero = np.flatnonzero(lcs_row)
    if len(nonzero):
        lcs = lcs_row[nonzero]
        precision = lcs / item_lengths[nonzero]
        recall = lcs / n
        scores = 2 * precision * recall / (precision + recall)
        max_score = float(scores.max())
        mean = float(scores.sum()) / visible
    else:
        scores = np.empty(0)
        max_score, mean = 0.0, 0.0
    if len(nonzero) > top_k:
        kth = np.partition(scores, len(scores) - top_k)[len(scores) - top_k]
        greater = np.flatnonzero(scores > kth)
        ties = np.flatnonzero(scores == kth)[: top_k - len(greater)]
        chosen = np.concatenate([greater, ties])
    else:
        chosen = np.arange(len(nonzero))
    order = chosen[np.lexsort((nonzero[chosen], -scores[chosen]))]
    top = [(int(nonzero[i]), float(scores[i])) for i in order]
    if len(top) < top_k and len(nonzero) < visible:
        zeros = np.flatnonzero(lcs_row[: len(nonzero) + top_k] == 0)[: top_k - len(top)]
        top.extend((int(i), 0.0) for i in zeros)
    return max_score, mean, top


def _metadata_rapidfuzz(  # noqa: ANN201 - a generator of (max, mean, top) per row
    full_rows: np.ndarray,
    visible: np.ndarray,
    comparison_texts: np.ndarray,
    sequences: list,
    lengths: list[int],
    num_pool: int,
    top_k: int,
):
    """Every row's scores with rapidfuzz `cdist`, many rows per call (used without numba)."""
    choices = [sequences[text] for text in comparison_texts.tolist()]
    choice_lengths = np.asarray(lengths, dtype=np.float64)[comparison_texts]
    for start in range(0, len(full_rows), METADATA_CHUNK_ROWS):
        rows = full_rows[start : start + METADATA_CHUNK_ROWS].tolist()
        width = int(visible[rows[-1]])
        queries = [sequences[num_pool + i] for i in rows]
        lcs_matrix = process.cdist(
            queries, choices[:width], scorer=LCSseq.similarity, dtype=np.int32, workers=-1
        )
        for row_number, i in enumerate(rows):
            yield _row_metadata(
                lcs_matrix[row_number, : visible[i]],
                choice_lengths[: visible[i]],
                lengths[num_pool + i],
                top_k,
            )


def fast_novelty_filter(
    candidates: Sequence[str],
    pool: Sequence[str],
    threshold: float = 0.7,
    top_k: int = 10,
    *,
    describe_dropped: bool = False,
) -> pd.DataFrame:
    """`novelty_filter` (see `sipipeline.similarity`), exact and fast."""
    threshold = float(threshold)
    token_lists = [rouge_tokens(text) for text in [*pool, *candidates]]
    lengths = [len(tokens) for tokens in token_lists]
    sequences, codes = _encode(token_lists)
    del token_lists
    num_pool = len(pool)
    num_candidates = len(lengths) - num_pool
    compiled = _use_compiled(num_candidates, len(lengths))
    keep, (hit_candidates, hit_texts, hit_scores) = decide(
        sequences, codes, lengths, num_pool, threshold, use_numba=compiled
    )

    top_k = max(int(top_k), 0)
    # Comparison set in order: pool, then kept candidates; output index = text number.
    comparison_texts = np.concatenate(
        [np.arange(num_pool), num_pool + np.flatnonzero(keep)]
    ).astype(np.int64)
    visible = num_pool + np.concatenate([[0], np.cumsum(keep)[:-1]]).astype(np.int64)

    max_scores = np.zeros(num_candidates, dtype=np.float64)
    means = np.full(num_candidates, math.nan)
    most_similar: list[list[dict]] = [[] for _ in range(num_candidates)]
    # Dropped: the hits above the threshold (they contain the maximum), best first.
    order = np.lexsort((hit_texts, -hit_scores, hit_candidates))
    hit_candidates, hit_texts, hit_scores = (
        hit_candidates[order].tolist(), hit_texts[order].tolist(), hit_scores[order].tolist()
    )
    for k, number in enumerate(hit_candidates):
        if k == 0 or hit_candidates[k - 1] != number:
            max_scores[number] = hit_scores[k]
            group = most_similar[number]
        if len(group) < top_k:
            group.append({"index": hit_texts[k], "score": hit_scores[k]})
    # A negative threshold drops candidates without hits: every item is above it.
    full_rows = np.asarray(
        [
            i
            for i in range(num_candidates)
            if keep[i] or describe_dropped or (threshold < 0 and visible[i])
        ],
        dtype=np.int64,
    )
    if compiled:
        row_max, row_mean, top_positions, top_scores = _metadata_compiled(
            num_pool + full_rows,
            visible[full_rows],
            comparison_texts,
            np.asarray(lengths, dtype=np.int64),
            codes,
            max(1, min(top_k, len(comparison_texts))),
        )
        row_results = (
            (
                float(row_max[r]),
                float(row_mean[r]),
                [
                    (int(position), float(score))
                    for position, score in zip(top_positions[r], top_scores[r], strict=True)
                    if position >= 0
                ][:top_k],
            )
            for r in range(len(full_rows))
        )
    else:
        row_results = _metadata_rapidfuzz(
            full_rows, visible, comparison_texts, sequences, lengths, num_pool, top_k
        )
    for i, (max_score, mean, top) in zip(full_rows.tolist(), row_results, strict=True):
        max_scores[i] = max_score
        if keep[i] or describe_dropped:
            means[i] = mean
        most_similar[i] = [
            {"index": int(comparison_texts[position]), "score": score} for position, score in top
        ]

    return pd.DataFrame(
        {
            "keep": np.asarray(keep, dtype=bool),
            "max_rouge_l": max_scores,
            "mean_rouge_l": means,
            "most_similar": most_similar,
        },
        columns=OUTPUT_COLUMNS,
    )
