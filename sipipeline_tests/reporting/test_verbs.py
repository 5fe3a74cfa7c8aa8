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


TRICKY_TEXTS = [
    "Was the children's book written by them?", "Is there a better way to go?",
    "Rewrite the following sentences using fewer words.", "Given two numbers, add them.",
    "Do the dishes.", "Have a look at this.", "Did you do it?", "There is a cat. Find it.",
    "Let's write a poem.", "Y'all gon na find it.", "  Write  a  poem.\n\nThen sing it.",
    "I ain't got it. Give it to me.", "Sort the numbers: 3, 1, 2.", "\n\n", "", "   ",
    "Summarize this article, but keep it short.", "You should find it. It is there.",
    "Write\na\nhaiku\nabout\nautumn.", "Gotta catch them all.", "C'mon, tell me a joke.",
]


def _stock_package(status: str) -> str:
    return next(name for name in verbs.MODEL_PACKAGES if f"(package {name})" in status)


def _kept_token_cases() -> list[str]:
    from sipipeline.method.seeds import load_seed_tasks
    from sipipeline.paths import DEFAULT_SEED_FILE

    seeds = load_seed_tasks(DEFAULT_SEED_FILE)
    texts = list(seeds["instruction"])
    for instances in seeds["instances"]:  # multi-sentence text, lists, code, dialogue
        for instance in instances:
            texts += [instance["input"], instance["output"]]
    return [text for text in texts if text] + TRICKY_TEXTS


def test_kept_token_annotation_gives_the_stock_pipelines_pairs():
    """The parser runs with numpy's BLAS, without the lemmatizer and without the attribute ruler
    on every token; the pairs must be what the stock pipeline (every component, every token,
    thinc's defaults) gives, on the seeds' instructions, inputs and outputs and edge cases."""
    import spacy

    nlp, status = verbs.load_parser()
    if nlp is None:
        pytest.skip(status)
    assert {verbs.LEMMATIZER, verbs.ATTRIBUTE_RULER} <= set(nlp.disabled)
    texts = _kept_token_cases()
    stock = spacy.load(_stock_package(status))
    full = [verbs.verb_noun_of(doc) for doc in stock.pipe(texts)]
    assert verbs.parse_verb_nouns(nlp, texts) == full
    assert sum(verb is not None for verb, _ in full) > len(texts) // 3
    assert sum(noun is not None for _, noun in full) > len(texts) // 5


def test_a_ruler_that_can_make_roots_or_objects_runs_on_every_token():
    from spacy.lang.en import English

    ruler = English().add_pipe(verbs.ATTRIBUTE_RULER)
    ruler.add([[{"LOWER": "gon"}, {"LOWER": "na"}]], {"LEMMA": "go"})
    assert verbs.ruler_reach(ruler) == 1
    ruler.add([[{"LOWER": "it"}]], {"DEP": "ROOT"})
    assert verbs.ruler_reach(ruler) is None
    assert verbs.ruler_reach(English().add_pipe(verbs.ATTRIBUTE_RULER)) == 0


def test_a_disabled_ruler_that_makes_objects_is_applied_to_the_whole_document():
    import spacy

    nlp, status = verbs.load_parser()
    if nlp is None:
        pytest.skip(status)
    package = _stock_package(status)
    custom = spacy.load(package, exclude=["ner"],
                        disable=[verbs.LEMMATIZER, verbs.ATTRIBUTE_RULER])
    stock = spacy.load(package)
    for pipeline in (custom, stock):  # "today" (an adverbial noun) becomes a direct object
        pipeline.get_pipe(verbs.ATTRIBUTE_RULER).add(
            [[{"LOWER": "today"}]], {"DEP": "dobj", "POS": "NOUN"})
    assert verbs.ruler_reach(custom.get_pipe(verbs.ATTRIBUTE_RULER)) is None
    texts = ["Write today.", "Call your mother today.", "Finish the report today, please."]
    expected = [verbs.verb_noun_of(doc) for doc in stock.pipe(texts)]
    assert ("write", "today") in expected
    assert verbs.parse_verb_nouns(custom, texts) == expected
