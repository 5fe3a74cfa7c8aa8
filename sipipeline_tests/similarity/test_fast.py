"""The fast filter reproduces rouge-score 0.1.2 decisions, scores and a stable top-k (checked
against the oracle), with either loop; and it never depends on the oracle."""

from __future__ import annotations

import ast
import json
import math
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sipipeline.similarity as similarity_package
from sipipeline.paths import DEFAULT_SEED_FILE
from sipipeline.similarity import novelty_filter, rouge_l_fmeasure
from sipipeline.similarity.oracle import reference_novelty_filter
from sipipeline_tests.support.similarity_cases import (
    ANY_TEXT,
    LOOPS,
    TIES,
    WORDS,
    assert_same_result,
    decision_loop,
    exact_tie_pair,
    near_duplicates,
)

FAST_PATH_MODULES = ("contract", "fast", "index", "kernels", "python_loops")


@pytest.mark.parametrize("loop", LOOPS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    candidates=st.lists(ANY_TEXT, max_size=12),
    pool=st.lists(ANY_TEXT, max_size=8),
    threshold=st.one_of(st.just(0.7), st.floats(-0.5, 1.5)),
    top_k=st.integers(1, 6),
    describe_dropped=st.booleans(),
)
def test_filter_matches_rouge_score_reference(
    loop, candidates, pool, threshold, top_k, describe_dropped
) -> None:
    expected = reference_novelty_filter(
        candidates, pool, threshold, top_k, describe_dropped=describe_dropped
    )
    with decision_loop(loop):
        actual = novelty_filter(
            candidates, pool, threshold, top_k, describe_dropped=describe_dropped
        )
    assert_same_result(actual, expected)


@pytest.mark.parametrize("loop", LOOPS)
@settings(max_examples=25, deadline=None)
@given(
    base=st.lists(st.sampled_from(WORDS), min_size=60, max_size=140),
    edits=st.lists(st.tuples(st.integers(0, 139), st.sampled_from(WORDS + ["new"])), max_size=40),
)
def test_long_texts_beyond_one_machine_word(loop, base, edits) -> None:
    """Instructions with more than 64 tokens need the multi-word LCS path."""
    edited = list(base)
    for position, word in edits:
        edited[position % len(edited)] = word
    pool = [" ".join(base), " ".join(base[:64]), " ".join(base[:63])]
    candidates = [" ".join(edited), " ".join(edited[::2]), " ".join(base[5:]), " ".join(edited[3:])]
    with decision_loop(loop):
        actual = novelty_filter(candidates, pool, describe_dropped=True)
    assert_same_result(actual, reference_novelty_filter(candidates, pool, describe_dropped=True))


@pytest.mark.parametrize("loop", LOOPS)
def test_exact_threshold_ties_follow_the_reference_float(loop) -> None:
    pool, candidates = [], []
    for number, (m, n, lcs) in enumerate(TIES):
        item, candidate = exact_tie_pair(m, n, lcs, f"t{number}")
        assert rouge_l_fmeasure(candidate, item) == TIES[(m, n, lcs)]
        pool.append(item)
        candidates.append(candidate)
    with decision_loop(loop):
        result = novelty_filter(candidates, pool)
    assert result["keep"].tolist() == [score <= 0.7 for score in TIES.values()]
    assert result["max_rouge_l"].tolist() == list(TIES.values())
    assert_same_result(result, reference_novelty_filter(candidates, pool))


def test_texts_without_tokens_are_never_rejected() -> None:
    candidates = ["", "水", "水", "?!", "😀 😀", "Give a joke.", "Give a joke!", ""]
    result = novelty_filter(candidates, ["", "水", "Give a joke"])
    assert result["keep"].tolist() == [True, True, True, True, True, False, False, True]
    assert result.loc[0, "max_rouge_l"] == 0.0
    assert result.loc[5, "most_similar"] == [{"index": 2, "score": 1.0}]
    assert_same_result(result, reference_novelty_filter(candidates, ["", "水", "Give a joke"]))


def test_kept_candidates_join_the_comparison_set_in_order() -> None:
    pool = ["Write a poem about the sea."]
    candidates = ["Tell me a story about a dragon.", "Tell me a story about a dragon!", "Hi"]
    result = novelty_filter(candidates, pool, top_k=3)
    assert result["keep"].tolist() == [True, False, True]
    assert result.loc[1, "max_rouge_l"] == 1.0
    assert result.loc[1, "most_similar"] == [{"index": 1, "score": 1.0}]  # len(pool) + 0
    assert [item["index"] for item in result.loc[2, "most_similar"]] == [0, 1]
    assert math.isnan(result.loc[1, "mean_rouge_l"])
    assert result["keep"].dtype == bool


def test_empty_inputs() -> None:
    assert len(novelty_filter([], ["a b c"])) == 0
    result = novelty_filter(["a b c", "a b c"], [])
    assert result["keep"].tolist() == [True, False]
    assert result.loc[0, "max_rouge_l"] == 0.0 and math.isnan(result.loc[0, "mean_rouge_l"])
    assert result.loc[0, "most_similar"] == []


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("threshold", [0.7, 0.5])
def test_seed_tasks_with_near_duplicates_match_reference(loop, threshold: float) -> None:
    seeds = [json.loads(line)["instruction"] for line in DEFAULT_SEED_FILE.open()]
    rng = random.Random(20230)
    tie_pool, tie_candidates = zip(
        *(exact_tie_pair(m, n, lcs, f"s{i}") for i, (m, n, lcs) in enumerate(TIES)), strict=True
    )
    pool = seeds[:120] + list(tie_pool)
    candidates = near_duplicates(seeds, rng, 140) + seeds[120:] + list(tie_candidates)
    candidates += ["", "…", "水水", seeds[0].upper(), seeds[1] + " " + seeds[1]]
    rng.shuffle(candidates)
    expected = reference_novelty_filter(candidates, pool, threshold)
    assert 0 < expected["keep"].sum() < len(candidates)
    with decision_loop(loop):
        actual = novelty_filter(candidates, pool, threshold)
    assert_same_result(actual, expected)


@pytest.mark.parametrize("module", FAST_PATH_MODULES)
def test_fast_path_never_imports_the_oracle(module: str) -> None:
    """The fast path depends on the shared contract only, not on rouge-score or the oracle."""
    path = Path(similarity_package.__file__).with_name(f"{module}.py")
    imported = set()  # fully qualified names
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    assert not {name for name in imported
                if name.startswith(("rouge_score", "sipipeline.similarity.oracle"))}
    own_package = {name.rsplit(".", 1)[1] for name in imported
                   if name.rsplit(".", 1)[0] == "sipipeline.similarity"}
    assert own_package <= set(FAST_PATH_MODULES)  # nothing through the package's public API


def test_compiled_kernels_are_cached_in_a_user_folder_not_in_the_package(tmp_path):
    """A fresh process with a fresh cache folder compiles into that folder."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    env.pop("NUMBA_CACHE_DIR", None)
    code = ("from sipipeline.similarity import kernels; import numba.core.config as c; "
            "print(c.CACHE_DIR)")
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, check=True).stdout.strip()
    assert shown == str(tmp_path / "sipipeline" / "numba")


@pytest.mark.parametrize("loop", LOOPS)
def test_an_encoded_pool_decides_exactly_as_its_texts(loop) -> None:
    seeds = [json.loads(line)["instruction"] for line in DEFAULT_SEED_FILE.open()]
    pool = seeds[:100]
    candidates = near_duplicates(seeds, random.Random(5), 60) + seeds[100:]
    encoded = similarity_package.encode_pool(pool)
    with decision_loop(loop):
        for part in (candidates[:20], candidates):  # one pool, several calls
            assert_same_result(novelty_filter(part, encoded), novelty_filter(part, pool))
