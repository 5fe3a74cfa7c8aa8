"""The one-line failure reason: the root cause, not Dagster's wrapper around it."""

from __future__ import annotations

import sys

import dagster as dg
import pytest
from dagster._utils.error import serializable_error_info_from_exc_info

from sipipeline.defs.resources import OpenAIEndpointResource
from sipipeline.defs.run_failures import failure_summary, root_cause
from sipipeline.method.seeds import SeedFileError
from sipipeline_tests.support.fake_model import respond
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer
from sipipeline_tests.support.round_harness import RoundJobHarness


def error_info(raise_it):
    try:
        raise_it()
    except Exception:
        return serializable_error_info_from_exc_info(sys.exc_info())
    raise AssertionError("nothing raised")


def test_the_cause_below_dagsters_wrapper_is_reported():
    def wrapped():
        try:
            raise SeedFileError("/data/seeds.jsonl", 7, "invalid JSON (Expecting value at 1)")
        except SeedFileError as error:
            raise RuntimeError('Error occurred while executing op "seed_pool":') from error

    assert root_cause(error_info(wrapped)) == (
        "SeedFileError: /data/seeds.jsonl:7: invalid JSON (Expecting value at 1)")


def test_a_failure_description_is_reported_as_written():
    def failed():
        try:
            raise KeyError("x")
        except KeyError as error:
            raise dg.Failure(description="instances: the endpoint said no") from error

    assert root_cause(error_info(failed)) == "instances: the endpoint said no"


@pytest.fixture
def harness_with(tmp_path):
    made = []

    def make(server: FakeOpenAIServer, **llm_settings) -> RoundJobHarness:
        llm = OpenAIEndpointResource(base_url=server.base_url, api_key="test-key",
                                     model="fake-model", max_in_flight=2, **llm_settings)
        harness = RoundJobHarness(tmp_path / "home", tmp_path / "storage", server, llm=llm)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.close()


def test_a_seed_file_error_is_reported_with_its_file_and_line(tmp_path, harness_with):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"id": "a"\n', encoding="utf-8")
    with FakeOpenAIServer(responder=respond) as server:
        result = harness_with(server).run_round(1, extra_config={
            "seed_pool": {"config": {"seed_file": str(seeds)}}})
    assert not result.success
    assert failure_summary(result.all_events).startswith(
        f"seed_pool: SeedFileError: {seeds}:1: invalid JSON")


def test_a_model_failure_after_step_retries_reports_the_endpoints_last_error(harness_with):
    with FakeOpenAIServer(responder=respond, faults=lambda number, body: "500") as server:
        result = harness_with(server, max_retries=1, backoff_base_s=0.01).run_round(1)
    assert not result.success
    assert any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
    summary = failure_summary(result.all_events)
    assert summary.startswith("generated_instructions: giving up after 1 retries")
    assert "last error: HTTP 500" in summary
    assert "Exceeded max_retries" not in summary and "Error occurred" not in summary
