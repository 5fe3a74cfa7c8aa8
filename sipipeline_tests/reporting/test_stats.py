"""Dataset statistics: known facts of the 175 seeds, round vs cumulative scopes, plots/report."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from sipipeline.method.schema import GENERATED_SCHEMA, frame, pool_frame
from sipipeline.method.seeds import load_seed_tasks
from sipipeline.paths import DEFAULT_SEED_FILE
from sipipeline.reporting import verbs
from sipipeline.reporting.render import render_round_report
from sipipeline.reporting.stats import (
    CUMULATIVE,
    ROUND,
    SEEDS,
    compute_dataset_stats,
    compute_seed_stats,
)

SEEDS_TEXT = [
    "Write a poem about the ocean.",
    "Give me a list of three fruits that are red.",
    "Is there anything I can eat for breakfast that has protein?",
    "Classify the sentiment of the sentence into positive or negative.",
]


@pytest.fixture(scope="module")
def raw_seed_records() -> list[dict]:
    with open(DEFAULT_SEED_FILE, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture(scope="module")
def seed_stats():
    return compute_seed_stats(load_seed_tasks(DEFAULT_SEED_FILE))


def test_seed_counts_match_known_facts(seed_stats):
    assert seed_stats.value(SEEDS, "tasks") == 175
    assert seed_stats.value(SEEDS, "classification_tasks") == 26
    assert seed_stats.value(SEEDS, "instances") == 175
    assert seed_stats.value(SEEDS, "empty_input_instances") == 50
    assert seed_stats.value(SEEDS, "instances_per_instruction") == 1.0
    assert seed_stats.value(SEEDS, "classification_share") == pytest.approx(26 / 175)
    assert seed_stats.metadata["seeds/classification_tasks"] == 26
    assert isinstance(seed_stats.metadata["seeds/empty_input_instances"], int)


def test_seed_word_lengths_match_an_independent_count(seed_stats, raw_seed_records):
    instructions = [len(r["instruction"].split()) for r in raw_seed_records]
    inputs = [len(i["input"].split()) for r in raw_seed_records for i in r["instances"]
              if i["input"].strip()]
    outputs = [len(i["output"].split()) for r in raw_seed_records for i in r["instances"]]
    assert len(inputs) == 125
    assert seed_stats.value(SEEDS, "instruction_words_mean") == pytest.approx(
        sum(instructions) / 175, rel=1e-12)
    assert seed_stats.value(SEEDS, "input_words_mean") == pytest.approx(
        sum(inputs) / len(inputs), rel=1e-12)
    assert seed_stats.value(SEEDS, "output_words_mean") == pytest.approx(
        sum(outputs) / len(outputs), rel=1e-12)
    assert seed_stats.value(SEEDS, "output_words_median") == statistics.median(outputs)
    assert "| classification tasks | 26 |" in seed_stats.markdown


def _task(task_id, round_number, instruction, instances, is_classification=False):
    return {"task_id": task_id, "instruction": instruction, "origin": "machine",
            "round": round_number, "is_classification": is_classification,
            "instances": [{"input": i, "output": o} for i, o in instances],
            "model": "fake-model", "request_id": f"r-{task_id}", "in_context_ids": [],
            "max_rouge_l": 0.2, "mean_rouge_l": 0.1, "most_similar": []}


def _seed(task_id, instruction):
    return {"task_id": task_id, "instruction": instruction, "origin": "seed", "round": 0,
            "is_classification": False, "instances": [{"input": "", "output": "seed output"}]}


def _synthetic_pool() -> pd.DataFrame:
    rows = [_seed(f"seed_task_{i}", text) for i, text in enumerate(SEEDS_TEXT)]
    rows += [
        _task("mi-1", 1, "Write a poem about the ocean.", [("", "waves and salt")]),
        _task("mi-2", 1, "Find the largest number in the list.",
              [("1 5 3", "5"), ("7 2", "7")]),
        _task("mi-3", 2, "Classify the sentence as positive or negative.",
              [("I love it", "positive"), ("I hate it", "negative"), ("", "positive")],
              is_classification=True),
        _task("mi-4", 2, "Give me three colors.", [("", "red green blue")]),
        _task("mi-5", 2, "Translate this sentence into French please.",
              [("good morning to you", "bonjour à vous")]),
    ]
    return pool_frame(rows)


def _generated(round_number, accepted, rejected_reasons):
    rows = [{"candidate_id": f"c{round_number}-{i}", "round": round_number, "instruction": text,
             "status": "accepted", "reject_reason": None} for i, text in enumerate(accepted)]
    rows += [{"candidate_id": f"x{round_number}-{i}", "round": round_number, "instruction": "x",
              "status": "rejected", "reject_reason": reason}
             for i, reason in enumerate(rejected_reasons)]
    return frame(rows, GENERATED_SCHEMA)


def _through_parquet(table: pd.DataFrame) -> pd.DataFrame:
    return pa.Table.from_pandas(table, preserve_index=False).to_pandas()


@pytest.fixture(scope="module")
def two_rounds():
    pool = _synthetic_pool()
    round_1 = compute_dataset_stats(
        pool[pool["round"] <= 1], _generated(1, ["a", "b"], ["too_short", "too_short"]), 1)
    round_2 = compute_dataset_stats(
        pool, _generated(2, ["c", "d", "e"], ["similar_to_pool", "blacklisted_word", None]), 2,
        _through_parquet(round_1.table))
    return pool, round_1, round_2


def test_round_scope_counts_only_this_round(two_rounds):
    _, _, stats = two_rounds
    assert stats.value(ROUND, "tasks") == 3
    assert stats.value(ROUND, "classification_tasks") == 1
    assert stats.value(ROUND, "instances") == 5
    assert stats.value(ROUND, "instances_per_instruction") == pytest.approx(5 / 3)
    assert stats.value(ROUND, "empty_input_instances") == 2
    assert stats.value(ROUND, "empty_input_share") == pytest.approx(2 / 5)
    # instructions: 7, 4, 6 words; non-empty inputs: 3, 3, 4; outputs: 1, 1, 1, 3, 3
    assert stats.value(ROUND, "instruction_words_mean") == pytest.approx(17 / 3)
    assert stats.value(ROUND, "input_words_mean") == pytest.approx(10 / 3)
    assert stats.value(ROUND, "output_words_mean") == pytest.approx(9 / 5)
    assert stats.value(ROUND, "output_words_median") == 1
    assert stats.value(ROUND, "instructions_generated") == 6
    assert stats.value(ROUND, "instructions_accepted") == 3
    assert stats.value(ROUND, "rejected/similar_to_pool") == 1
    assert stats.value(ROUND, "rejected/unknown") == 1
    assert stats.value(ROUND, "rejected/too_short") == 0


def test_cumulative_scope_adds_previous_rounds(two_rounds):
    _, round_1, stats = two_rounds
    assert round_1.value(CUMULATIVE, "tasks") == 2
    assert round_1.value(CUMULATIVE, "funnel_rounds") == 1
    assert stats.value(CUMULATIVE, "tasks") == 5
    assert stats.value(CUMULATIVE, "instances") == 8
    assert stats.value(CUMULATIVE, "classification_share") == pytest.approx(1 / 5)
    assert stats.value(CUMULATIVE, "empty_input_share") == pytest.approx(3 / 8)
    assert stats.value(CUMULATIVE, "instructions_generated") == 10
    assert stats.value(CUMULATIVE, "instructions_accepted") == 5
    assert stats.value(CUMULATIVE, "acceptance_rate") == pytest.approx(0.5)
    assert stats.value(CUMULATIVE, "rejected/too_short") == 2
    assert stats.value(CUMULATIVE, "funnel_rounds") == 2
    assert stats.value(SEEDS, "tasks") == 4


def test_metadata_is_flat_numbers_with_int_counts(two_rounds):
    _, _, stats = two_rounds
    meta = stats.metadata
    assert meta["round/tasks"] == 3 and isinstance(meta["round/tasks"], int)
    assert meta["cumulative/instructions_generated"] == 10
    assert isinstance(meta["cumulative/acceptance_rate"], float)
    assert meta["round_number"] == 2
    assert isinstance(meta["verb_noun_status"], str)
    assert all(isinstance(v, (int, float, str)) for v in meta.values())
    assert not any(isinstance(v, float) and math.isnan(v) for v in meta.values())
    assert "| instructions (tasks kept) | 3 | 5 | 4 |" in stats.markdown
    assert "| instructions generated | 6 | 10 |" in stats.markdown


def test_nearest_seed_rouge_is_the_exact_seed_that_matches(two_rounds):
    _, _, stats = two_rounds
    scores = dict(zip(stats.rouge_l_to_seed["task_id"], stats.rouge_l_to_seed["score"],
                      strict=True))
    assert set(scores) == {"mi-1", "mi-2", "mi-3", "mi-4", "mi-5"}
    assert scores["mi-1"] == 1.0  # an exact copy of a seed
    assert stats.value(CUMULATIVE, "rouge_l_to_seed_hist/0.95-1.00") >= 1
    bins = stats.table[(stats.table["scope"] == ROUND)
                       & stats.table["metric"].str.startswith("rouge_l_to_seed_hist/")]
    assert len(bins) == 20 and bins["value"].sum() == 3


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


def test_statistics_work_without_spacy(monkeypatch):
    monkeypatch.setenv(verbs.DISABLE_ENV, "0")
    verbs.load_parser.cache_clear()
    try:
        stats = compute_dataset_stats(_synthetic_pool(), _generated(2, ["c"], []), 2)
    finally:
        verbs.load_parser.cache_clear()
    assert stats.verb_noun_status.startswith("not available:")
    assert stats.top_verbs.empty
    assert stats.value(ROUND, "tasks") == 3
    assert math.isnan(stats.value(ROUND, "distinct_verbs"))
    assert "not available" in stats.markdown


def test_missing_previous_table_is_reported_in_the_funnel():
    stats = compute_dataset_stats(_synthetic_pool(), _generated(2, ["c"], []), 2, None)
    assert stats.value(CUMULATIVE, "funnel_rounds") == 1
    assert "covers 1 of 2 rounds" in stats.markdown


def test_empty_round_gives_zeros_not_errors():
    pool = _synthetic_pool()
    stats = compute_dataset_stats(pool[pool["round"] <= 1], _generated(2, [], []), 2)
    assert stats.value(ROUND, "tasks") == 0
    assert math.isnan(stats.value(ROUND, "classification_share"))
    assert "round/classification_share" not in stats.metadata
    assert stats.value(CUMULATIVE, "tasks") == 2


def test_report_writes_pngs_and_a_self_contained_html(two_rounds, tmp_path):
    pool, _, stats = two_rounds
    files = render_round_report(stats, pool, 2, tmp_path / "report")
    assert {"html", "lengths", "rouge_l_to_seed", "funnel"} <= set(files)
    for name, path in files.items():
        if name != "html":
            with open(path, "rb") as handle:
                assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    page = Path(files["html"]).read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == len(files) - 1
    assert "<script" not in page and "<link" not in page and 'src="http' not in page
    assert "Translate this sentence into French please." in page or "mi-" in page
    assert "<table>" in page and "round 2" in page
    assert "paper (GPT-3)</th>" in page and ">52,445</td>" in page  # every column rendered
