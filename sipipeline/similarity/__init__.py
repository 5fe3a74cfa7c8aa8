"""ROUGE-L novelty filter with exactly the scores and decisions of rouge-score 0.1.2.

The reference (rouge-score `RougeScorer(["rougeL"], use_stemmer=False)`) tokenises with
`re.findall(r"[a-z0-9]+", text.lower())`, scores a pair whose either side has no token as 0, and
otherwise computes F = 2·p·r/(p+r) from the LCS length L of the token lists, with
p = L/len(pool item) and r = L/len(candidate), in float64 in that order.

Output of `novelty_filter`, one row per candidate in input order:
- `keep`: False when some item of the comparison set (the pool, then the candidates kept earlier
  in the same call) scores strictly above `threshold`. With nothing to compare, kept.
- `max_rouge_l`: the highest score over the comparison set (0.0 when it is empty).
- `mean_rouge_l`: mean score over the comparison set for kept candidates (NaN when it is empty);
  NaN for dropped ones unless `describe_dropped=True`.
- `most_similar`: `[{"index": int, "score": float}, ...]`, at most `top_k`, highest score first,
  equal scores by lower index. `index` is `0..len(pool)-1` for pool items and `len(pool) + i`
  for candidate `i` kept earlier in the call. For kept candidates (or all, with
  `describe_dropped=True`) it ranks the whole comparison set; for dropped ones only the items
  scoring above the threshold (so never empty, and its first score is `max_rouge_l`).

Scores are bit-for-bit rouge-score's; the implementation (prefix-filtered keep/drop, compiled
with numba when installed) is in `_similarity_fast`, the rouge-score oracle the tests and
`benchmarks/novelty_filter.py` check it against in `_similarity_reference`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from sipipeline.similarity.fast import fast_novelty_filter, rouge_tokens
from sipipeline.similarity.oracle import reference_rouge_l

__all__ = ["max_rouge_l_to", "novelty_filter", "rouge_l_fmeasure", "rouge_tokens"]


def rouge_l_fmeasure(a: str, b: str) -> float:
    """ROUGE-L F-measure of two texts, the exact value rouge-score returns (as a float)."""
    return reference_rouge_l(a, b)


def novelty_filter(
    candidates: Sequence[str],
    pool: Sequence[str],
    threshold: float = 0.7,
    top_k: int = 10,
    *,
    describe_dropped: bool = False,
) -> pd.DataFrame:
    """Decide candidates in order against the pool plus the ones kept before them (see module)."""
    return fast_novelty_filter(
        candidates, pool, threshold, top_k, describe_dropped=describe_dropped
    )


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
