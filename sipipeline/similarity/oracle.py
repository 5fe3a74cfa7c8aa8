"""The slow oracle: the novelty filter written directly on rouge-score 0.1.2.

Tests and the benchmark compare the fast filter with this one; it also states the output
semantics in the plainest possible code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from rouge_score import rouge_scorer

from sipipeline.similarity.contract import OUTPUT_COLUMNS

_SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def reference_tokens(text: str) -> list[str]:
    """rouge-score's own tokeniser (no stemmer)."""
    return _SCORER._tokenizer.tokenize(text)


def reference_rouge_l(candidate: str, pool_item: str) -> float:
    """rouge-score's F-measure, with the candidate as target as the self-instruct code does."""
    return float(_SCORER.score(candidate, pool_item)["rougeL"].fmeasure)


def stable_top_k(scores: Sequence[float], top_k: int) -> list[dict]:
    """Highest score first; equal scores in comparison-set order (lower index first)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:top_k]
    return [{"index": i, "score": float(scores[i])} for i in order]


def reference_novelty_filter(
    candidates: Sequence[str],
    pool: Sequence[str],
    threshold: float = 0.7,
    top_k: int = 10,
    *,
    describe_dropped: bool = False,
) -> pd.DataFrame:
    """Same contract as `sipipeline.similarity.novelty_filter`, one rouge-score call per pair."""
    comparison_tokens = [reference_tokens(text) for text in pool]
    output_index = list(range(len(pool)))  # comparison position → pool index or len(pool) + i
    rows = []
    for position, text in enumerate(candidates):
        tokens = reference_tokens(text)
        scores = [
            float(rouge_scorer._score_lcs(tokens, other).fmeasure) for other in comparison_tokens
        ]
        max_score = max(scores, default=0.0)
        keep = not (scores and max_score > threshold)
        if keep or describe_dropped:
            mean = float(np.mean(scores)) if scores else math.nan
            most_similar = stable_top_k(scores, top_k)
        else:
            mean = math.nan
            above = [score if score > threshold else -1.0 for score in scores]
            most_similar = [item for item in stable_top_k(above, top_k) if item["score"] >= 0]
        for item in most_similar:
            item["index"] = output_index[item["index"]]
        rows.append(
            {
                "keep": keep,
                "max_rouge_l": float(max_score),
                "mean_rouge_l": mean,
                "most_similar": most_similar,
            }
        )
        if keep:
            comparison_tokens.append(tokens)
            output_index.append(len(pool) + position)
    return pd.DataFrame(rows, columns=OUTPUT_COLUMNS).astype(
        {"keep": bool, "max_rouge_l": float, "mean_rouge_l": float}
    )
