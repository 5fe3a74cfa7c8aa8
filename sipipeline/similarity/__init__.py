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

Scores are bit-for-bit rouge-score's. Modules: `contract` (tokens, output columns), `fast` (the
filter: prefix-filtered keep/drop, then full scores) with `index` (index preparation), `kernels`
(numba loops) and `python_loops` (the same loops without numba); `nearest` (ROUGE-L to a fixed
reference set); `oracle` (the filter on rouge-score itself, which the tests and
`benchmarks/novelty_filter.py` check the fast path against; the fast path never imports it).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from sipipeline.similarity.contract import rouge_tokens
from sipipeline.similarity.index import EncodedPool
from sipipeline.similarity.nearest import max_rouge_l_to

__all__ = ["EncodedPool", "encode_pool", "max_rouge_l_to", "novelty_filter",
           "rouge_l_fmeasure", "rouge_tokens"]


def rouge_l_fmeasure(a: str, b: str) -> float:
    """ROUGE-L F-measure of two texts, the exact value rouge-score returns (as a float)."""
    from sipipeline.similarity.oracle import reference_rouge_l

    return reference_rouge_l(a, b)


def encode_pool(texts: Sequence[str]) -> EncodedPool:
    """The pool tokenized and encoded once, for several `novelty_filter` calls against it
    (same results as passing the texts)."""
    from sipipeline.similarity.index import encode_pool as encode

    return encode(texts)


def novelty_filter(
    candidates: Sequence[str],
    pool: Sequence[str] | EncodedPool,
    threshold: float = 0.7,
    top_k: int = 10,
    *,
    describe_dropped: bool = False,
) -> pd.DataFrame:
    """Decide candidates in order against the pool plus the ones kept before them (see module)."""
    from sipipeline.similarity.fast import fast_novelty_filter  # numba: imported when used

    return fast_novelty_filter(
        candidates, pool, threshold, top_k, describe_dropped=describe_dropped
    )
