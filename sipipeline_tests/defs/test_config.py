"""Run config is checked when it is built, and a bad value is never retried."""

from __future__ import annotations

import dagster as dg
import pytest

from sipipeline.defs.config import (
    ClassificationConfig,
    GenerationConfig,
    InstanceConfig,
    SeedPoolConfig,
    validate_round_config,
)
from sipipeline.defs.run_failures import failure_summary
from sipipeline_tests.support.fake_model import respond
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer
from sipipeline_tests.support.round_harness import RoundJobHarness


@pytest.mark.parametrize(("config_class", "values", "named"), [
    (GenerationConfig, {"similarity_threshold": -0.5}, "similarity_threshold=-0.5"),
    (GenerationConfig, {"similarity_threshold": 1.01}, "similarity_threshold=1.01"),
    (GenerationConfig, {"num_prompts": 0}, "num_prompts=0"),
    (GenerationConfig, {"num_prompts": -3}, "num_prompts=-3"),
    (GenerationConfig, {"num_examples": 0}, "num_examples=0"),
    (GenerationConfig, {"num_machine_examples": -1}, "num_machine_examples=-1"),
    (GenerationConfig, {"num_examples": 4, "num_machine_examples": 5},
     "num_machine_examples (5) must not exceed num_examples (4)"),
    (GenerationConfig, {"temperature": -0.1}, "temperature=-0.1"),
    (GenerationConfig, {"temperature": 2.5}, "temperature=2.5"),
    (GenerationConfig, {"top_p": 1.5}, "top_p=1.5"),
    (GenerationConfig, {"presence_penalty": 2.5}, "presence_penalty=2.5"),
    (GenerationConfig, {"frequency_penalty": -3.0}, "frequency_penalty=-3.0"),
    (GenerationConfig, {"max_tokens": 0}, "max_tokens=0"),
    (ClassificationConfig, {"max_tokens": 0}, "max_tokens=0"),
    (ClassificationConfig, {"temperature": 9.0}, "temperature=9.0"),
    (InstanceConfig, {"max_tokens_input_first": 0}, "max_tokens_input_first=0"),
    (InstanceConfig, {"max_tokens_output_first": -1}, "max_tokens_output_first=-1"),
    (InstanceConfig, {"top_p": -0.5}, "top_p=-0.5"),
    (SeedPoolConfig, {"seed_file": ""}, "seed_file=''"),
])
def test_a_value_out_of_range_fails_for_good(config_class, values, named):
    with pytest.raises(dg.Failure) as failure:
        config_class(**values)
    assert not failure.value.allow_retries
    assert named in failure.value.description
    assert failure.value.description.startswith(f"invalid {config_class.__name__}: ")


def test_the_defaults_and_the_bounds_are_valid():
    for config_class in (SeedPoolConfig, GenerationConfig, ClassificationConfig, InstanceConfig):
        config_class()
    GenerationConfig(similarity_threshold=0.0, num_machine_examples=8, temperature=2.0,
                     top_p=0.0, presence_penalty=-2.0)
    GenerationConfig(similarity_threshold=1.0)


def test_a_run_config_is_checked_as_a_whole():
    validate_round_config({})
    validate_round_config({"ops": {"generated_instructions": {"config": {"num_prompts": 3}}}})
    with pytest.raises(dg.Failure) as failure:
        validate_round_config({"ops": {
            "generated_instructions": {"config": {"num_prompts": 0}},
            "instances": {"config": {"max_tokens_input_first": 0}}}})
    assert not failure.value.allow_retries
    assert "ops.generated_instructions.config: invalid GenerationConfig: num_prompts=0" in (
        failure.value.description)
    assert "ops.instances.config: invalid InstanceConfig: max_tokens_input_first=0" in (
        failure.value.description)


@pytest.fixture
def harness(tmp_path):
    with FakeOpenAIServer(responder=respond) as server:
        made = RoundJobHarness(tmp_path / "home", tmp_path / "storage", server)
        yield made, server
        made.close()


def retries(result) -> int:
    return sum(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)


def test_a_bad_threshold_stops_the_round_in_its_first_step_without_retries(harness):
    harness, server = harness
    result = harness.run_round(1, extra_config={"generated_instructions": {"config": {
        "num_prompts": 2, "similarity_threshold": -0.5}}})
    assert not result.success and retries(result) == 0
    assert failure_summary(result.all_events).startswith(
        "seed_pool: ops.generated_instructions.config: invalid GenerationConfig: "
        "similarity_threshold=-0.5")
    assert server.request_log == []


def test_a_model_step_started_alone_with_bad_config_is_not_retried(harness):
    harness, server = harness
    key = "round_001"
    harness.instance.add_dynamic_partitions("bootstrap_round", [key])
    assert harness.job.execute_in_process(
        partition_key=key, instance=harness.instance,
        asset_selection=[dg.AssetKey("seed_pool")]).success
    result = harness.job.execute_in_process(
        partition_key=key, instance=harness.instance, raise_on_error=False,
        asset_selection=[dg.AssetKey("generated_instructions")],
        run_config={"ops": {"generated_instructions": {"config": {"num_prompts": 0}}}})
    assert not result.success and retries(result) == 0
    assert "num_prompts=0" in failure_summary(result.all_events)
    assert server.request_log == []
