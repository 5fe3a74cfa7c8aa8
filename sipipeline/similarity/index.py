"""Index preparation for the fast filter: token codes, a global rarity order, prefix lengths.

- Each distinct token of a call becomes one Unicode code point, so a text becomes a short string
  whose character LCS is the token LCS (past the code-point range, texts become integer lists).
- Pruning uses exact integer bounds only. F > t needs L ≥ Treq(m+n) = ⌈c·(m+n)/2⌉ with c a hair
  under t (the float expression is within a few ulps of 2L/(m+n)), and L ≤ the multiset overlap.
  Order all token occurrences (token, k-th occurrence) globally, rarest first. If two texts share
  ≥ T occurrences, their first common occurrence sits at positions i, j with n − i ≥ T and
  m − j ≥ T (prefix filtering with a positional bound). So each text is indexed under its first
  `prefix` occurrences, a candidate probes its own, and only pairs passing
  min(n − i, m − j) ≥ Treq(m+n) (then an overlap bound) get an exact LCS.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd

from sipipeline.similarity.contract import rouge_tokens

# Distinct tokens that fit in a str, one per code point (surrogates skipped). A module constant
# so tests can shrink it to exercise the integer-list fallback.
MAX_STRING_ALPHABET = 0x110000 - 0x800
# Exact-arithmetic margin under the threshold: float F exceeds t only if 2L/(m+n) > t·(1-6e-16).
_MARGIN = Fraction(1, 10**12)

# What both keep/drop loops return besides the flags: candidate number, text number, score of
# every pair above the threshold.
Hits = tuple[np.ndarray, np.ndarray, np.ndarray]


class _AlphabetFullError(Exception):
    """More distinct tokens than code points: fall back to integer sequences."""


def _char_of(code: int) -> str:
    return chr(code + 0x800 if code >= 0xD800 else code)  # surrogates skipped


def _code_of(char: str) -> int:
    point = ord(char)
    return point - 0x800 if point >= 0xD800 + 0x800 else point


class _Alphabet(dict):
    """token → one-character str, assigned on first sight."""

    def __missing__(self, token: str) -> str:
        code = len(self)
        if code >= MAX_STRING_ALPHABET:
            raise _AlphabetFullError
        char = _char_of(code)
        self[token] = char
        return char


def encode(token_lists: list[list[str]]) -> tuple[list, np.ndarray]:
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


@dataclass(frozen=True)
class EncodedPool:
    """Pool texts tokenized and encoded once, for several `novelty_filter` calls against the
    same pool (a round decides its first requests' candidates, then all of them).

    Encoding the pool first and the candidates after, with the pool's alphabet extended, gives
    exactly the codes of encoding both together: codes are assigned on first sight, pool first.
    For the same reason a pool's encoding extended by the tasks a round adds (`extended`) is
    the encoding of the next pool, so it can be kept from round to round (`save`, `load`).
    """

    size: int
    sequences: list  # one str per text; the token lists themselves when `alphabet` is None
    codes: np.ndarray
    lengths: list[int]
    alphabet: dict[str, str] | None  # None: more distinct tokens than code points

    def __len__(self) -> int:
        return self.size

    def extended(self, texts: Sequence[str]) -> EncodedPool:
        """The encoding of this pool followed by `texts` (what `encode_pool` of both gives)."""
        token_lists = [rouge_tokens(str(text)) for text in texts]
        extended = _extend(self, token_lists)
        if extended is None:
            return encode_pool_tokens(self.token_lists() + token_lists)
        sequences, codes, alphabet = extended
        return EncodedPool(self.size + len(texts), sequences, codes,
                           self.lengths + [len(tokens) for tokens in token_lists], alphabet)

    def save(self, path: str) -> bool:
        """Write to `path` (.npz, atomically); False when there is nothing compact to keep
        (the integer fallback)."""
        if self.alphabet is None:
            return False
        tokens = sorted(self.alphabet, key=lambda token: _code_of(self.alphabet[token]))
        partial = f"{path}.partial.npz"
        np.savez(partial, codes=self.codes.astype(np.uint32),
                 lengths=np.asarray(self.lengths, dtype=np.int64),
                 tokens=np.frombuffer("\n".join(tokens).encode("utf-8"), dtype=np.uint8))
        os.replace(partial, path)
        return True

    @classmethod
    def load(cls, path: str) -> EncodedPool:
        """What `save` wrote."""
        with np.load(path) as stored:
            codes = stored["codes"].astype(np.int64)
            lengths = stored["lengths"].tolist()
            words = stored["tokens"].tobytes().decode("utf-8")
        tokens = words.split("\n") if words else []
        alphabet = {token: _char_of(code) for code, token in enumerate(tokens)}
        joined = codes.astype(np.uint32).tobytes().decode("utf-32-le")
        ends = np.cumsum(lengths).tolist()
        sequences = [joined[end - length:end] for end, length in zip(ends, lengths, strict=True)]
        return cls(len(lengths), sequences, codes, lengths, alphabet)

    def token_lists(self) -> list[list[str]]:
        """The pool's tokens again (for the integer fallback)."""
        if self.alphabet is None:
            return self.sequences
        token_of = {char: token for token, char in self.alphabet.items()}
        return [[token_of[char] for char in sequence] for sequence in self.sequences]


def encode_pool(texts: Sequence[str]) -> EncodedPool:
    """Tokenize and encode pool texts once (see `EncodedPool`)."""
    return encode_pool_tokens([rouge_tokens(str(text)) for text in texts])


def encode_pool_tokens(token_lists: list[list[str]]) -> EncodedPool:
    lengths = [len(tokens) for tokens in token_lists]
    alphabet = _Alphabet()
    try:
        sequences = ["".join(map(alphabet.__getitem__, tokens)) for tokens in token_lists]
    except _AlphabetFullError:
        return EncodedPool(len(token_lists), token_lists, np.empty(0, np.int64), lengths, None)
    codes = np.frombuffer("".join(sequences).encode("utf-32-le"),
                          dtype=np.uint32).astype(np.int64)
    return EncodedPool(len(token_lists), sequences, codes, lengths, dict(alphabet))


def encode_with_pool(pool: EncodedPool, token_lists: list[list[str]]
                     ) -> tuple[list, np.ndarray, list[int]]:
    """`encode(pool tokens + token_lists)` and the lengths, reusing the pool's encoding."""
    lengths = pool.lengths + [len(tokens) for tokens in token_lists]
    extended = _extend(pool, token_lists)
    if extended is None:
        sequences, codes = encode(pool.token_lists() + token_lists)
        return sequences, codes, lengths
    return extended[0], extended[1], lengths


def _extend(pool: EncodedPool, token_lists: list[list[str]]
            ) -> tuple[list, np.ndarray, dict[str, str]] | None:
    """Sequences, codes and alphabet of the pool followed by `token_lists` (None when the
    pool or the addition needs the integer fallback)."""
    if pool.alphabet is None:
        return None
    alphabet = _Alphabet(pool.alphabet)
    try:
        added = ["".join(map(alphabet.__getitem__, tokens)) for tokens in token_lists]
    except _AlphabetFullError:
        return None
    added_codes = np.frombuffer("".join(added).encode("utf-32-le"),
                                dtype=np.uint32).astype(np.int64)
    return pool.sequences + added, np.concatenate([pool.codes, added_codes]), dict(alphabet)


@dataclass
class Prepared:
    """Flat per-call arrays shared by both keep/drop loops (texts: pool, then candidates)."""

    lengths: np.ndarray  # tokens per text
    offsets: np.ndarray  # start of each text in `codes` / `ranks` (len = texts + 1)
    codes: np.ndarray  # token codes, text after text, in text order
    ranks: np.ndarray  # per text, its occurrences' global ranks ascending (rarest first)
    prefix: np.ndarray  # per text: how many of its rarest occurrences are indexed / probed
    required: np.ndarray  # by m + n: least LCS that can make F exceed the threshold


def required_lcs_table(threshold: float, max_total: int) -> np.ndarray:
    """Treq(s) = max(1, ⌈c·s/2⌉) for s = 0..max_total, c = threshold − 1e-12 (exact)."""
    ratio = max(Fraction(threshold) - _MARGIN, Fraction(0))
    a, b = ratio.numerator, 2 * ratio.denominator
    return np.array([max(1, -((-a * s) // b)) for s in range(max_total + 1)], dtype=np.int64)


def prefix_length(n: int, required: np.ndarray) -> int:
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


def prepare(codes: np.ndarray, lengths: list[int], threshold: float) -> Prepared:
    """Global rarity order of token occurrences, each text's occurrences in that order."""
    lengths_array = np.asarray(lengths, dtype=np.int64)
    offsets = np.zeros(len(lengths_array) + 1, dtype=np.int64)
    np.cumsum(lengths_array, out=offsets[1:])
    text_of = np.repeat(np.arange(len(lengths_array), dtype=np.int64), lengths_array)
    total = len(codes)
    code_span = int(codes.max()) + 1 if total else 1
    # k-th occurrence of its token within its text (0 for the first): sort by (text, code),
    # stable, so equal (text, code) stay in position order.
    order = np.argsort(text_of * code_span + codes, kind="stable")
    sorted_codes, sorted_texts = codes[order], text_of[order]
    run_starts = np.ones(total, dtype=bool)
    run_starts[1:] = (sorted_codes[1:] != sorted_codes[:-1]) | (
        sorted_texts[1:] != sorted_texts[:-1]
    )
    positions = np.arange(total, dtype=np.int64)
    occurrence = np.empty(total, dtype=np.int64)
    occurrence[order] = positions - np.maximum.accumulate(np.where(run_starts, positions, 0))
    # Rank occurrences by how many texts contain them (rarest first), ties by key.
    key = occurrence * code_span + codes
    unique_keys, inverse, counts = _distinct(key)
    rank_of_unique = np.empty(len(unique_keys), dtype=np.int64)
    rank_of_unique[np.lexsort((unique_keys, counts))] = np.arange(len(unique_keys))
    occurrence_rank = rank_of_unique[inverse]
    # Each text's ranks ascending: texts are already in order, so one sort of (text, rank).
    rank_span = max(len(unique_keys), 1)
    ranks = np.sort(text_of * rank_span + occurrence_rank) - text_of * rank_span

    max_length = int(lengths_array.max()) if len(lengths_array) else 0
    required = required_lcs_table(threshold, 2 * max_length + 1)
    prefix_by_length = np.zeros(max_length + 1, dtype=np.int64)
    for n in np.unique(lengths_array).tolist():
        prefix_by_length[n] = prefix_length(n, required)
    return Prepared(
        lengths=lengths_array,
        offsets=offsets,
        codes=codes,
        ranks=ranks,
        prefix=prefix_by_length[lengths_array],
        required=required,
    )


def _distinct(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct values (in no particular order), each value's index among them, and counts:
    `np.unique(values, return_inverse=True, return_counts=True)` by hashing, not sorting."""
    inverse, distinct = pd.factorize(values, sort=False)
    inverse = inverse.astype(np.int64, copy=False)
    return (np.asarray(distinct, dtype=np.int64), inverse,
            np.bincount(inverse, minlength=len(distinct)))


def frequency_ordered_codes(codes: np.ndarray) -> np.ndarray:
    """Tokens renumbered most frequent first (ties: lower code first), so the kernels'
    per-token lookups hit a small, cache-resident part of their tables."""
    if not len(codes):
        return np.empty(0, dtype=np.int64)
    counts = np.bincount(codes)  # codes are token numbers: small and non-negative
    present = np.flatnonzero(counts)
    renumbered = np.empty(len(counts), dtype=np.int64)
    renumbered[present[np.argsort(-counts[present], kind="stable")]] = np.arange(len(present))
    return renumbered[codes]
