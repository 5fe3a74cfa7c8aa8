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


def test_lemmatizing_only_the_kept_tokens_gives_the_full_pipelines_pairs():
    """The parser runs without the lemmatizer; lemmas of the root and object alone must be
    what the whole pipeline (lemmatizer on every token) gives, on the 175 seed instructions."""
    from sipipeline.method.seeds import load_seed_tasks
    from sipipeline.paths import DEFAULT_SEED_FILE

    nlp, status = verbs.load_parser()
    if nlp is None:
        pytest.skip(status)
    texts = list(load_seed_tasks(DEFAULT_SEED_FILE)["instruction"]) + [
        "Was the children's book written by them?", "Is there a better way to go?",
        "Rewrite the following sentences using fewer words.", "Given two numbers, add them."]
    lemmatizer = nlp.get_pipe(verbs.LEMMATIZER)
    assert verbs.LEMMATIZER in nlp.disabled
    trimmed = [verbs.verb_noun_of(doc, lemmatizer) for doc in nlp.pipe(texts)]
    full = [verbs.verb_noun_of(lemmatizer(doc)) for doc in nlp.pipe(texts)]
    assert trimmed == full
    assert sum(verb is not None for verb, _ in full) > len(texts) // 2
