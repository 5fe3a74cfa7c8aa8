"""The compiled (numba) loops of the fast filter and the flat arrays they run on.

- keep/drop: candidates in order over the prefix index (see `index`), a bit-parallel LCS (Hyyrö;
  multi-word beyond 64 tokens) for the pairs that pass the exact bounds;
- full scores (max, mean, stable top-k) of every row at once, by token co-occurrence: an item
  lacking a candidate token is unchanged by it, so each step touches only that token's
  postings; rows in parallel.

Floats follow rouge-score's expression operation for operation (numba without fast-math agrees
with Python bit for bit). `numba` is None when it is not installed; `fast` then never calls in.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sipipeline.similarity.index import Hits, Prepared, frequency_ordered_codes

NUMBA_CACHE_ENV = "NUMBA_CACHE_DIR"


def compile_cache_dir() -> Path:
    """Where compiled kernels are kept between processes: a user cache folder, writable after
    any install (numba's default, `__pycache__` beside this file, may be read-only)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sipipeline" / "numba"


# Read by numba when it is first imported; an explicit NUMBA_CACHE_DIR wins.
os.environ.setdefault(NUMBA_CACHE_ENV, str(compile_cache_dir()))

try:  # optional accelerator
    import numba
except ImportError:  # pragma: no cover - exercised by forcing the Python loops in tests
    numba = None


_ONE = np.uint64(1)
_ALL_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
_SIX = np.uint64(6)
_LOW_SIX = np.uint64(63)
_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)
_S1, _S2, _S4, _S56 = np.uint64(1), np.uint64(2), np.uint64(4), np.uint64(56)


def _popcount(x):
    """Bits set in a uint64 word (SWAR)."""
    x = x - ((x >> _S1) & _M1)
    x = (x & _M2) + ((x >> _S2) & _M2)
    x = (x + (x >> _S4)) & _M4
    return (x * _H01) >> _S56


def _multiword_step(vector, pattern, words, local, local_start, local_positions):
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


def _fill_local_positions(codes, start, n, num_local, local_of_code, local_count, local_start,
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


def _multiword_lcs(vector, words, n):
    """The LCS length held by a multi-word vector over a candidate of n tokens."""
    lcs = 0
    for w in range(words):
        bits = ~vector[w]
        if w == words - 1 and (n & 63) != 0:
            bits &= _ALL_ONES >> np.uint64(64 - (n & 63))
        lcs += np.int64(_popcount(bits))
    return lcs


def _decide_kernel(
    num_pool, threshold, lengths, offsets, codes, ranks, prefix, required, postings_start
):
    """`python_loops.decide_python` as a numba loop, with one more exact filter before the LCS.

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


def _insert_top(top_positions, top_scores, count, top_k, position, score):
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


def _metadata_kernel(
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


def decide_compiled(
    prepared: Prepared, num_pool: int, threshold: float
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
        frequency_ordered_codes(prepared.codes),
        prepared.ranks,
        prepared.prefix,
        prepared.required,
        postings_start,
    )
    return keep, (candidates, texts, scores)


def metadata_compiled(
    rows: np.ndarray,
    row_visible: np.ndarray,
    comparison_texts: np.ndarray,
    lengths: np.ndarray,
    codes: np.ndarray,
    top_k: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Build token → (comparison position, position mask) postings and run the kernel."""
    kernel_codes = frequency_ordered_codes(codes)
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
