"""What the oracle and the fast path share: rouge-score's tokens and the output columns.

Its own module so the fast path depends on the contract, never on the oracle (which pulls in
rouge-score itself).
"""

from __future__ import annotations

import re

OUTPUT_COLUMNS = ["keep", "max_rouge_l", "mean_rouge_l", "most_similar"]

_TOKEN_RE = re.compile(r"[a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """Tokens exactly as rouge-score 0.1.2 makes them without a stemmer."""
    return _TOKEN_RE.findall(text.lower())
