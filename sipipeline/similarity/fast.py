"""Exact, fast ROUGE-L novelty filter: the same floats as rouge-score, orders of magnitude sooner.

This module is the glue: tokens → index (`index`) → keep/drop → full scores, with either the
compiled loops (`kernels`, numba) or the Python + rapidfuzz ones (`python_loops`).

How it stays exact:
- Tokens are rouge-score's (`contract.rouge_tokens`); each distinct token of a call becomes one
  code, so the token LCS is a sequence LCS over codes.
- Scores use the reference expression p = L/m, r = L/n, 2·p·r/(p+r) in float64, in the same
  order of IEEE operations (Python, NumPy and numba without fast-math agree bit for bit).
- Pruning uses exact integer bounds only (prefix filtering, see `index`).

How it is fast:
- Keep/drop runs candidate by candidate (each sees the ones kept before it) over that index.
- Full scores (max, mean, stable top-k of kept candidates) need every pair; they are computed
  after the decisions, for all rows at once.
- With numba, both loops are compiled; without it (or for small calls, see USE_NUMBA) they run
  as Python with rapidfuzz's LCS: same results, slower.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from sipipeline.similarity import kernels
from sipipeline.similarity.contract import OUTPUT_COLUMNS, rouge_tokens
from sipipeline.similarity.index import (
    EncodedPool,
    Hits,
    encode,
    encode_with_pool,
    prepare,
)
from sipipeline.similarity.python_loops import decide_python, metadata_rapidfuzz

# Which loops run: True = compiled (numba), False = Python + rapidfuzz, None = compiled only
# for calls of at least COMPILED_MIN_PAIRS candidate × comparison pairs, so small calls never
# wait for the one-off compilation (then cached on disk by numba).
USE_NUMBA: bool | None = None
COMPILED_MIN_PAIRS = 2_000_000


def use_compiled(num_candidates: int, num_texts: int) -> bool:
    """Whether this call runs the numba loops (see USE_NUMBA)."""
    if kernels.numba is None or USE_NUMBA is False:
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
    prepared = prepare(codes, lengths, threshold)
    if use_compiled(num_candidates, len(lengths)) if use_numba is None else use_numba:
        return kernels.decide_compiled(prepared, num_pool, threshold)
    return decide_python(prepared, sequences, num_pool, threshold)


def fast_novelty_filter(
    candidates: Sequence[str],
    pool: Sequence[str] | EncodedPool,
    threshold: float = 0.7,
    top_k: int = 10,
    *,
    describe_dropped: bool = False,
) -> pd.DataFrame:
    """`novelty_filter` (see `sipipeline.similarity`), exact and fast."""
    threshold = float(threshold)
    if isinstance(pool, EncodedPool):
        sequences, codes, lengths = encode_with_pool(
            pool, [rouge_tokens(text) for text in candidates])
    else:
        token_lists = [rouge_tokens(text) for text in [*pool, *candidates]]
        lengths = [len(tokens) for tokens in token_lists]
        sequences, codes = encode(token_lists)
        del token_lists
    num_pool = len(pool)
    num_candidates = len(lengths) - num_pool
    compiled = use_compiled(num_candidates, len(lengths))
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
        row_max, row_mean, top_positions, top_scores = kernels.metadata_compiled(
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
        row_results = metadata_rapidfuzz(
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
