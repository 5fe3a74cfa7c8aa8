"""The fast filter's two loops in Python with rapidfuzz's LCS: used without numba and for small
calls (no compilation wait). Same results as the compiled loops in `kernels`, slower.
"""

from __future__ import annotations

import math

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from sipipeline.similarity.index import Hits, Prepared

# Rows of full scores computed per rapidfuzz call (memory: rows × comparison set × 4 bytes).
METADATA_CHUNK_ROWS = 256


def fmeasure(lcs: int, candidate_len: int, item_len: int) -> float:
    """rouge-score's F for a pair with L > 0, operation for operation."""
    precision = lcs / item_len
    recall = lcs / candidate_len
    return 2 * precision * recall / (precision + recall)


def decide_python(
    prepared: Prepared, sequences: list, num_pool: int, threshold: float
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
                    score = fmeasure(lcs, n, m)
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


def row_metadata(
    lcs_row: np.ndarray, item_lengths: np.ndarray, n: int, top_k: int
) -> tuple[float, float, list[tuple[int, float]]]:
    """max, mean and stable top-k (comparison positions) of one candidate's scores."""
    visible = len(lcs_row)
    if visible == 0:
        return 0.0, math.nan, []
    if top_k == 0:
        return row_metadata(lcs_row, item_lengths, n, 1)[:2] + ([],)
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


def metadata_rapidfuzz(
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
            yield row_metadata(
                lcs_matrix[row_number, : visible[i]],
                choice_lengths[: visible[i]],
                lengths[num_pool + i],
                top_k,
            )
