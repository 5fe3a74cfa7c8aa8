"""`quality_review` against a loopback judge, the judge resource, the judge filter and the
review assets staying out of the rounds' way."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from sipipeline.defs.automation import OFF_ROUND_ASSETS, round_runs
from sipipeline.defs.resources import EmbeddedModelResource, OpenAIEndpointResource
from sipipeline.defs.review import (
    JUDGE_API_KEY_ENV,
    JUDGE_BASE_URL_ENV,
    JUDGE_MODEL_ENV,
    judge_resource_from_env,
)
from sipipeline.method import quality
from sipipeline.method.review import QUESTIONS
from sipipeline.method.vocabulary import Origin
from sipipeline_tests.support.fake_judge import (
    is_judge_prompt,
    judge_and_model,
    script_for,
)
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer, prompt_list_of
from sipipeline_tests.support.round_harness import RoundJobHarness

REVIEW = dg.AssetKey("quality_review")


def materialize_review(harness: RoundJobHarness, number: int, asset: str = "quality_review",
                       config: dict | None = None) -> dg.ExecuteInProcessResult:
    """One review asset of one round, as the UI's "Materialize" does (upstream stays put)."""
    job = harness.defs.resolve_implicit_global_asset_job_def()
    run_config = {"ops": {asset: {"config": config}}} if config else None
    return job.execute_in_process(asset_selection=[dg.AssetKey(asset)],
                                  partition_key=f"round_{number:03d}",
                                  instance=harness.instance, run_config=run_config,
                                  raise_on_error=False)


def judge_requests(server: FakeOpenAIServer) -> list[str]:
    """Every judge prompt the server was sent (prompts packed into one request count apart)."""
    return [prompt for e in server.completion_log()
            for prompt in prompt_list_of(e["path"], e["body"]) if is_judge_prompt(prompt)]


def metadata_of(result: dg.ExecuteInProcessResult, asset: str = "quality_review") -> dict:
    [event] = [e for e in result.get_asset_materialization_events()
               if e.asset_key == dg.AssetKey(asset)]
    return event.materialization.metadata


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    """Round 1 on the fake model, and its quality_review by the scripted loopback judge.

    Shared by the tests below in file order; the ones that change round 1's review come last.
    """
    root = tmp_path_factory.mktemp("review")
    with pytest.MonkeyPatch.context() as patch, \
            FakeOpenAIServer(responder=judge_and_model) as server:
        for name in (JUDGE_BASE_URL_ENV, JUDGE_API_KEY_ENV, JUDGE_MODEL_ENV):
            patch.delenv(name, raising=False)
        harness = RoundJobHarness(root / "home", root / "storage", server)
        assert harness.run_round(1, num_prompts=6).success
        assert not judge_requests(server), "the round job must not call the judge"
        result = materialize_review(harness, 1)
        assert result.success
        yield harness, server, result
        harness.close()


def test_the_review_table_equals_the_scripted_truth(reviewed):
    harness, server, result = reviewed
    verdicts = harness.read("quality_review", 1)
    pool = harness.read("filtered_tasks", 1)
    new_tasks = pool[(pool["origin"] == Origin.MACHINE) & (pool["round"] == 1)]
    assert len(verdicts) == len(new_tasks) > 5  # fewer than 200: every task is reviewed
    assert len(judge_requests(server)) == len(verdicts)
    truth = [script_for(instruction).truth for instruction in verdicts["instruction"]]
    scripted_kinds = {script_for(i).text for i in verdicts["instruction"]}
    assert len(scripted_kinds) >= 4, "the sample should meet clear and malformed answers"
    table = quality.quality_table(verdicts).set_index("measure")
    for index, question in enumerate(QUESTIONS):
        answers = [t[index] for t in truth]
        expected = [answers.count(True), answers.count(False), answers.count(None)]
        assert table.loc[str(question), ["yes", "no", "unparseable"]].tolist() == expected
        stored = [None if v is None or v != v else bool(v) for v in verdicts[str(question)]]
        assert stored == answers
    unparseable = sum(1 for t in truth if None in t)
    assert int(verdicts["parse_error"].notna().sum()) == unparseable
    metadata = metadata_of(result)
    assert metadata["records_with_unparseable_answer"].value == unparseable
    yes = table.loc["correct_output", "yes"]
    answered = table.loc["correct_output", "answered"]
    assert metadata["quality/correct_output/share"].value == pytest.approx(yes / answered)
    low, high = quality.wilson_interval(int(yes), int(answered))
    assert metadata["quality/correct_output/ci_low"].value == pytest.approx(low)
    assert metadata["quality/correct_output/ci_high"].value == pytest.approx(high)
    text = metadata["quality"].value
    assert "92%" in text and "79%" in text and "58%" in text
    assert "Does the instruction describe a valid task?" in text
    page = Path(metadata["report/html"].value).read_text(encoding="utf-8")
    assert "92%" in page and "Does the instruction describe a valid task?" in page
    assert "Cohen" not in page  # no human review yet


def test_a_rerun_sends_no_request_and_gives_the_same_verdicts(reviewed):
    harness, server, _ = reviewed
    before = len(server.completion_log())
    first = harness.read("quality_review", 1)
    again = materialize_review(harness, 1)
    assert again.success
    assert len(server.completion_log()) == before
    assert metadata_of(again)["llm/journal_hits"].value == len(first)
    assert harness.read("quality_review", 1).equals(first)


def test_review_runs_never_hold_up_or_block_the_next_round(reviewed):
    harness, _, _ = reviewed
    instance = harness.instance
    round_run = instance.get_runs(filters=dg.RunsFilter(job_name="bootstrap_round_job"))[0]
    review_run = instance.get_runs(filters=dg.RunsFilter(job_name="__ASSET_JOB"))[0]
    assert review_run.asset_selection == {REVIEW}
    made = [create_run_for_test(instance, job_name="__ASSET_JOB", status=status,
                                tags={"dagster/partition": "round_001"},
                                asset_selection=set(OFF_ROUND_ASSETS))
            for status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.STARTED)]
    latest, in_flight = round_runs(instance)
    assert latest[1].run_id == round_run.run_id and not in_flight
    round_assets_run = create_run_for_test(
        instance, job_name="__ASSET_JOB", status=dg.DagsterRunStatus.STARTED,
        tags={"dagster/partition": "round_001"},
        asset_selection={dg.AssetKey("instances"), REVIEW})
    latest, in_flight = round_runs(instance)
    assert [r.run_id for r in in_flight] == [round_assets_run.run_id]
    for run in (*made, round_assets_run):  # the shared instance goes on to later tests
        instance.delete_run(run.run_id)


def test_the_judge_filter_leaves_invalid_tasks_out_of_the_next_pool(reviewed):
    harness, _, _ = reviewed
    verdicts = harness.read("quality_review", 1)
    invalid_tasks = set(verdicts.loc[verdicts["valid_instruction"] == False, "task_id"])  # noqa: E712
    assert invalid_tasks
    default = harness.run_round(2, num_prompts=2)
    assert default.success
    assert invalid_tasks <= set(harness.read("seed_pool", 2)["task_id"])
    filtered = harness.run_round(2, num_prompts=2, extra_config={
        "seed_pool": {"config": {"drop_judge_invalid": True}}})
    assert filtered.success
    pool = harness.read("seed_pool", 2)
    assert not invalid_tasks & set(pool["task_id"])
    metadata = metadata_of(filtered, "seed_pool")
    removed = metadata["funnel/rejected_judge_invalid"].value
    assert removed >= len(invalid_tasks)
    assert len(pool) == len(harness.read("filtered_tasks", 1)) - removed


def test_the_sample_size_and_seed_are_settings(reviewed):
    harness, _, _ = reviewed
    result = materialize_review(harness, 1, config={"sample_size": 3, "sample_seed": 7})
    assert result.success
    assert len(harness.read("quality_review", 1)) == 3


def test_the_judge_is_held_to_the_budget(reviewed):
    """Last of the shared-fixture tests: it swaps the model resource for a priced one."""
    harness, server, _ = reviewed
    harness.use_model(OpenAIEndpointResource(
        base_url=server.base_url, api_key="test-key", model="fake-model",
        price_prompt_per_million=1000.0, price_completion_per_million=1000.0,
        budget_usd=0.01))
    before = len(judge_requests(server))
    result = materialize_review(harness, 1, config={"max_tokens": 120})  # not journaled yet
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "budget" in failure.step_failure_data.error.to_string()
    assert len(judge_requests(server)) - before < len(harness.read("quality_review", 1))


def test_the_judge_filter_needs_the_review(tmp_path, monkeypatch):
    monkeypatch.delenv(JUDGE_BASE_URL_ENV, raising=False)
    with FakeOpenAIServer(responder=judge_and_model) as server:
        harness = RoundJobHarness(tmp_path / "home", tmp_path / "storage", server)
        assert harness.run_round(1).success
        result = harness.run_round(2, extra_config={
            "seed_pool": {"config": {"drop_judge_invalid": True}}})
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        assert "quality_review of round_001 is not materialized" in \
            failure.step_failure_data.error.to_string()
        harness.close()


def test_a_separate_judge_endpoint_gets_every_review_request(tmp_path, monkeypatch):
    secret = "sk-judge-secret-123456"
    with FakeOpenAIServer(responder=judge_and_model) as generator, \
            FakeOpenAIServer(responder=judge_and_model, model_ids=["judge-model"],
                             require_api_key=secret) as judge:
        monkeypatch.setenv(JUDGE_BASE_URL_ENV, judge.base_url)
        monkeypatch.setenv(JUDGE_API_KEY_ENV, secret)
        monkeypatch.setenv(JUDGE_MODEL_ENV, "judge-model")
        harness = RoundJobHarness(tmp_path / "home", tmp_path / "storage", generator)
        assert harness.run_round(1).success
        result = materialize_review(harness, 1)
        assert result.success
        verdicts = harness.read("quality_review", 1)
        assert len(judge_requests(judge)) == len(verdicts) > 0
        assert not judge_requests(generator)
        assert all(e["path"].endswith("/chat/completions") for e in judge.completion_log())
        assert {e["body"]["model"] for e in judge.completion_log()} == {"judge-model"}
        assert set(verdicts["reviewer"]) == {"judge-model"}
        shown = " ".join(str(v.value) for v in metadata_of(result).values())
        assert secret not in shown
        harness.close()


def test_the_judge_resource_falls_back_to_the_generator():
    generator = OpenAIEndpointResource(base_url="http://127.0.0.1:9/v1", api_key="k",
                                       model="gen", budget_usd=2.0)
    assert judge_resource_from_env(generator, {}) is generator
    same_endpoint = judge_resource_from_env(generator, {JUDGE_MODEL_ENV: "bigger"})
    assert isinstance(same_endpoint, OpenAIEndpointResource)
    assert same_endpoint.base_url == "http://127.0.0.1:9/v1"
    assert same_endpoint.budget_usd == 2.0 and same_endpoint.api_key == "k"
    assert same_endpoint.model.env_var_name == JUDGE_MODEL_ENV
    separate = judge_resource_from_env(generator, {JUDGE_BASE_URL_ENV: "http://x/v1"})
    assert isinstance(separate, OpenAIEndpointResource)
    assert separate.base_url.env_var_name == JUDGE_BASE_URL_ENV
    assert separate.api == "chat" and separate.model == "gpt-4o-mini"
    assert separate.budget_usd == 2.0 and separate.api_key is None
    embedded = EmbeddedModelResource()
    assert judge_resource_from_env(embedded, {}) is embedded
    other_gguf = judge_resource_from_env(embedded, {JUDGE_MODEL_ENV: "/models/judge.gguf"})
    assert isinstance(other_gguf, EmbeddedModelResource)
    assert other_gguf.model_path.env_var_name == JUDGE_MODEL_ENV
    remote = judge_resource_from_env(embedded, {JUDGE_BASE_URL_ENV: "http://x/v1",
                                                JUDGE_MODEL_ENV: "judge"})
    assert isinstance(remote, OpenAIEndpointResource)
    assert remote.model.env_var_name == JUDGE_MODEL_ENV
