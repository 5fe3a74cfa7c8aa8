"""ROUGE-L of texts to their nearest member of a fixed reference set (e.g. the seeds)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from sipipeline.similarity.contract import rouge_tokens


def max_rouge_l_to(texts: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Highest ROUGE-L F-measure of each text against a fixed set of references.

    For statistics such as "ROUGE-L to the nearest seed": no in-order growth of the comparison
    set as in `novelty_filter`. Same tokens and float expression as rouge-score 0.1.2
    (`scorer.score(text, reference)`: p = L/len(reference), r = L/len(text), F = 2·p·r/(p+r),
    0 for an empty side); LCS lengths come from rapidfuzz on integer token ids. NaN for every
    text when there is no reference.
    """
    if not len(texts):
        return np.zeros(0, dtype=np.float64)
    if not len(references):
        return np.full(len(texts), np.nan)
    vocabulary: dict[str, int] = {}

    def token_ids(batch: Sequence[str]) -> list[list[int]]:
        return [[vocabulary.setdefault(token, len(vocabulary)) for token in rouge_tokens(str(t))]
                for t in batch]

    reference_ids = token_ids(references)
    text_ids = token_ids(texts)
    lcs = process.cdist(text_ids, reference_ids, scorer=LCSseq.similarity, dtype=np.int32,
                        workers=1).astype(np.float64)
    text_len = np.array([len(t) for t in text_ids], dtype=np.float64)[:, None]
    reference_len = np.array([len(r) for r in reference_ids], dtype=np.float64)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(reference_len > 0, lcs / reference_len, 0.0)
        recall = np.where(text_len > 0, lcs / text_len, 0.0)
        total = precision + recall
        fmeasure = np.where(total > 0, 2 * precision * recall / total, 0.0)
    return fmeasure.max(axis=1)
