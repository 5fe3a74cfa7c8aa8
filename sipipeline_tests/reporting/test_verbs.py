"""Verb–noun pairs of instructions and the top-verb table (the paper's sunburst data)."""

from __future__ import annotations

import pandas as pd
import pytest

from sipipeline.reporting import verbs
from sipipeline_tests.support.stats_cases import SEEDS_TEXT


def test_verb_noun_pairs_and_top_table():
    result = verbs.extract_verb_nouns(SEEDS_TEXT + ["Write a story about a dog."])
    if not result.available:
        pytest.skip(result.status)
    pairs = list(zip(result.pairs["verb"], result.pairs["noun"], strict=True))
    assert pairs[0] == ("write", "poem")
    assert pairs[1] == ("give", "list")
    assert pd.isna(pairs[2][1])  # a question has no verb–object pair
    top = verbs.top_verb_nouns(result.pairs)
    assert list(top.columns) == ["verb", "noun", "count", "verb_count"]
    assert top.iloc[0]["verb"] == "write" and top.iloc[0]["verb_count"] == 2
    assert list(top[top["verb"] == "write"]["noun"]) == ["poem", "story"]  # tie: alphabetical


def test_top_verbs_keep_twenty_verbs_and_four_nouns():
    rows = [(f"i{v}-{n}-{k}", f"verb{v:02d}", f"noun{n}")
            for v in range(25) for n in range(6) for k in range(v + n + 1)]
    pairs = pd.DataFrame(rows, columns=["instruction", "verb", "noun"])
    top = verbs.top_verb_nouns(pairs)
    assert top["verb"].nunique() == 20
    assert top.groupby("verb").size().max() == 4
    assert top.iloc[0]["verb"] == "verb24" and top.iloc[0]["noun"] == "noun5"
