"""Real Dagster runs of several rounds against a fake model served over HTTP on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster._core.definitions.data_version import StaleStatus

from sipipeline.defs import assets
from sipipeline.defs.jobs import ROUND_ASSETS
from sipipeline.defs.partitions import bootstrap_rounds, round_key
from sipipeline.defs.resources import OpenAIEndpointResource
from sipipeline.similarity import rouge_l_fmeasure
from sipipeline_tests.support.fake_chat_model import respond_chat
from sipipeline_tests.support.fake_model import respond
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer
from sipipeline_tests.support.round_harness import RoundJobHarness

ASSET_NAMES = ["seed_pool", "generated_instructions", "classification_labels", "instances",
               "filtered_tasks", "dataset_stats"]


Pipeline = RoundJobHarness


@pytest.fixture
def pipeline(tmp_path, server) -> Pipeline:
    return Pipeline(tmp_path / "home", tmp_path / "storage", server)


def test_three_rounds_grow_the_pool_and_rerunning_a_round_makes_the_next_stale(pipeline):
    sizes = []
    for number in (1, 2, 3):
        assert pipeline.run_round(number).success
        for name in ASSET_NAMES:
            assert (pipeline.storage / name / f"{round_key(number)}.parquet").is_file(), name
        pool = pipeline.read("filtered_tasks", number)
        sizes.append(len(pool))
        assert pipeline.read("seed_pool", number)["task_id"].tolist() == (
            pipeline.read("filtered_tasks", number - 1)["task_id"].tolist()
            if number > 1 else pipeline.read("seed_pool", 1)["task_id"].tolist())
    assert 175 < sizes[0] < sizes[1] < sizes[2]

    # Round 2's prompts show machine tasks from round 1 (2 of 8 in-context examples).
    round_one_ids = set(pipeline.read("filtered_tasks", 1).query("origin == 'machine'").task_id)
    generated = pipeline.read("generated_instructions", 2)
    assert all(len(set(ids) & round_one_ids) == 2 for ids in generated["in_context_ids"])

    # No accepted instruction is above the threshold against anything before it in the pool.
    pool = pipeline.read("filtered_tasks", 3)
    texts = pool["instruction"].tolist()
    for position in range(175, len(texts)):
        assert max(rouge_l_fmeasure(texts[position], t) for t in texts[:position]) <= 0.7
    machine = pool[pool["origin"] == "machine"]
    assert machine["most_similar"].map(len).eq(10).all()
    assert machine["model"].eq("fake-model").all()

    assert pipeline.status("seed_pool", 3) == StaleStatus.FRESH
    # Re-run round 2 with fresh samples: round 3 now starts from a pool that no longer exists.
    assert pipeline.run_round(2, random_seed=7).success
    assert pipeline.status("seed_pool", 3) == StaleStatus.STALE
    assert pipeline.status("seed_pool", 2) == StaleStatus.FRESH


def test_rerunning_a_round_reuses_journaled_responses(pipeline, server):
    assert pipeline.run_round(1).success
    paid = len(server.paid_log())
    first = pipeline.read("filtered_tasks", 1)
    assert pipeline.run_round(1).success
    assert len(server.paid_log()) == paid  # every response came from the journal
    assert pipeline.read("filtered_tasks", 1).equals(first)


def test_metadata_shows_counts_schema_preview_and_funnel(pipeline):
    result = pipeline.run_round(1)
    events = {m.asset_key.path[-1]: m.metadata
              for m in (e.event_specific_data.materialization
                        for e in result.get_asset_materialization_events())}
    generated = events["generated_instructions"]
    assert generated["dagster/row_count"].value > 0
    assert "dagster/column_schema" in generated and "preview" in generated
    rejected = sum(v.value for k, v in generated.items() if k.startswith("funnel/rejected_"))
    assert rejected + generated["funnel/accepted"].value == generated["dagster/row_count"].value
    assert generated["funnel/requests"].value == 3
    # Token accounting per asset: what this round's requests cost.
    assert generated["llm/requests"].value == 3
    assert generated["llm/prompt_tokens"].value > 0 and generated["llm/completion_tokens"].value > 0
    assert generated["llm/model"].value == "fake-model"
    assert events["instances"]["llm/requests"].value == events["classification_labels"][
        "dagster/row_count"].value
    assert events["filtered_tasks"]["pool_size"].value > 175


def test_a_round_without_its_predecessor_fails_clearly(pipeline):
    result = pipeline.run_round(2, raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("seed_pool")
    assert "filtered_tasks of round_001 is not materialized" in failure.error.to_string()


def test_a_bad_seed_file_stops_before_any_model_call(tmp_path, server):
    bad = tmp_path / "seeds.jsonl"
    bad.write_text('{"id": "a"}\n', encoding="utf-8")
    pipeline = Pipeline(tmp_path / "home", tmp_path / "storage", server)
    pipeline.instance.add_dynamic_partitions(bootstrap_rounds.name, ["round_001"])
    result = pipeline.materialize(
        ROUND_ASSETS, partition_key="round_001",
        run_config={"ops": {"seed_pool": {"config": {"seed_file": str(bad)}}}})
    assert not result.success
    assert f"{bad}:1: missing field 'instruction'" in (
        result.failure_data_for_node("seed_pool").error.to_string())
    assert server.request_log == []


def test_the_export_asset_writes_every_format_from_the_latest_round(pipeline):
    import json

    for number in (1, 2):
        assert pipeline.run_round(number).success
    result = pipeline.materialize([assets.fine_tuning_exports])
    assert result.success
    metadata = result.asset_materializations_for_node("fine_tuning_exports")[0].metadata
    assert metadata["source_round"].value == "round_002"
    out_dir = Path(metadata["out_dir"].value)
    machine = pipeline.read("filtered_tasks", 2).query("origin == 'machine'")
    exported = []
    for split in ("train", "validation"):
        path = next(out_dir.glob(f"alpaca/*{split}*.json"))
        exported += json.loads(path.read_text(encoding="utf-8"))
    assert {r["instruction"] for r in exported} == set(machine["instruction"])
    assert (out_dir / "README.md").is_file()


def test_an_unknown_round_key_fails_with_a_clear_error(pipeline, server):
    pipeline.instance.add_dynamic_partitions(bootstrap_rounds.name, ["latest"])
    result = pipeline.materialize(ROUND_ASSETS, partition_key="latest")
    assert not result.success
    assert "'latest' is not a bootstrap round key" in (
        result.failure_data_for_node("seed_pool").error.to_string())
    assert server.request_log == []


def test_bad_credentials_fail_the_round_once_without_retries(tmp_path):
    with FakeOpenAIServer(responder=respond, require_api_key="the-right-key") as server:
        pipeline = Pipeline(tmp_path / "home", tmp_path / "storage", server)
        result = pipeline.run_round(1, raise_on_error=False)
        assert not result.success
        text = result.failure_data_for_node("generated_instructions").error.to_string()
        assert "401" in text and "test-key" not in text
        retried = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        assert retried == []
        # At most the requests already in flight when the first 401 came back, none resent.
        prompts_sent = [entry["body"]["prompt"] for entry in server.completion_log()]
        assert 1 <= len(prompts_sent) <= 3 and len(set(prompts_sent)) == len(prompts_sent)


def test_a_round_runs_against_a_chat_model_through_the_same_assets(tmp_path):
    with FakeOpenAIServer(responder=respond_chat) as server:
        pipeline = Pipeline(tmp_path / "home", tmp_path / "storage", server)
        pipeline.use_model(OpenAIEndpointResource(base_url=server.base_url, api_key="test-key",
                                                  model="fake-model", api="chat"))
        assert pipeline.run_round(1).success
        assert {e["path"] for e in server.completion_log()} == {"/v1/chat/completions"}
        pool = pipeline.read("filtered_tasks", 1)
        assert (pool["origin"] == "machine").sum() > 0
        pipeline.close()
