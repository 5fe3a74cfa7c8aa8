"""A round is done only when its whole run succeeded: the hand-off to the next round is its last
step, so a failed check or a failed statistics step never opens the next round."""

from __future__ import annotations

import dagster as dg
import pytest

from sipipeline.defs import assets
from sipipeline.defs.automation import handed_off_rounds, round_runs, round_to_run
from sipipeline.defs.partitions import bootstrap_rounds
from sipipeline.defs.storage import RoundStore
from sipipeline.method import prompts
from sipipeline_tests.defs.test_automation import evaluate_sensor
from sipipeline_tests.support.fake_model import respond
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer
from sipipeline_tests.support.round_harness import RoundJobHarness

HANDOFF = dg.AssetKey("round_handoff")


def respond_with_a_duplicate(prompt: str, body: dict, index: int) -> tuple[str, str]:
    """Like the fake model, but generation answers hold a copy ROUGE-L cannot see, so the
    blocking duplicate check fails."""
    if prompt.startswith(prompts.GENERATION_HEADER):
        start = len([line for line in prompt.splitlines() if line[:1].isdigit()])
        return (" Describe the ﬁnest ﬁsh ﬁllets ﬁrst in a short paragraph\n"
                f"{start + 1}. Describe the finest fish fillets first in a short paragraph"
                ), "stop"
    return respond(prompt, body, index)


@pytest.fixture
def server():
    with FakeOpenAIServer(responder=respond) as fake:
        yield fake


@pytest.fixture
def harness(tmp_path, server):
    made = RoundJobHarness(tmp_path / "home", tmp_path / "storage", server)
    yield made
    made.close()


def partitions(instance: dg.DagsterInstance) -> list[str]:
    return list(instance.get_dynamic_partitions(bootstrap_rounds.name))


def handoffs(instance: dg.DagsterInstance) -> list[str]:
    return [r.partition_key for r in instance.fetch_observations(HANDOFF, limit=100).records]


def next_manual_round(instance: dg.DagsterInstance) -> str:
    latest, _ = round_runs(instance)
    return round_to_run(latest, handed_off_rounds(instance)).partition_key


def test_a_failed_blocking_check_opens_no_next_round_and_the_round_runs_again(harness, server):
    server.responder = respond_with_a_duplicate
    failed = harness.run_round(1)
    assert not failed.success
    assert [e.check_name for e in failed.get_asset_check_evaluations()
            if not e.passed] == ["no_duplicate_instructions"]
    assert partitions(harness.instance) == ["round_001"]
    assert handoffs(harness.instance) == []
    assert harness.instance.get_materialized_partitions(dg.AssetKey("round_completion")) == set()
    assert next_manual_round(harness.instance) == "round_001"
    skipped = evaluate_sensor(harness.instance)
    assert not skipped.run_requests and "round_001" in skipped.skip_message
    assert "ended FAILURE" in skipped.skip_message

    server.responder = respond  # journaled answers replay: fresh samples need a new seed
    assert harness.run_round(1, random_seed=1).success
    assert partitions(harness.instance) == ["round_001", "round_002"]
    [handoff] = harness.instance.fetch_observations(HANDOFF, limit=10).records
    assert handoff.partition_key == "round_002"
    pool = harness.read("filtered_tasks", 1)
    assert handoff.asset_observation.metadata["pool_size"].value == len(pool)
    assert next_manual_round(harness.instance) == "round_002"
    [request] = evaluate_sensor(harness.instance).run_requests
    assert request.partition_key == "round_002"


def test_a_failure_while_writing_statistics_keeps_the_round_open(harness, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("sipipeline.reporting.render.render_round_report", disk_full)
    result = harness.run_round(1)
    assert not result.success
    assert (harness.storage / "filtered_tasks" / "round_001.parquet").is_file()
    assert partitions(harness.instance) == ["round_001"] and handoffs(harness.instance) == []
    assert next_manual_round(harness.instance) == "round_001"
    assert evaluate_sensor(harness.instance).run_requests == []


def test_a_failed_rerun_of_a_done_round_makes_it_not_done_again(harness, server):
    assert harness.run_round(1).success
    assert next_manual_round(harness.instance) == "round_002"
    server.responder = respond_with_a_duplicate
    assert not harness.run_round(1, random_seed=7).success
    assert next_manual_round(harness.instance) == "round_001"
    assert evaluate_sensor(harness.instance).run_requests == []


def test_a_run_of_part_of_a_round_does_not_mark_it_done(harness):
    assert harness.run_round(1).success
    harness.instance.delete_dynamic_partition(bootstrap_rounds.name, "round_002")
    result = harness.job.execute_in_process(
        partition_key="round_001", instance=harness.instance, raise_on_error=False,
        asset_selection=[dg.AssetKey("round_completion")])
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "left out" in failure.step_failure_data.error.message
    assert "seed_pool" in failure.step_failure_data.error.message
    assert partitions(harness.instance) == ["round_001"]


def test_the_export_takes_the_latest_done_round_not_a_failed_one(harness, server):
    assert harness.run_round(1).success
    server.responder = respond_with_a_duplicate
    assert not harness.run_round(2).success
    assert (harness.storage / "filtered_tasks" / "round_002.parquet").is_file()
    result = dg.materialize([assets.fine_tuning_exports], instance=harness.instance,
                            resources={"round_store": RoundStore(base_path=str(harness.storage))})
    metadata = result.asset_materializations_for_node("fine_tuning_exports")[0].metadata
    assert metadata["source_round"].value == "round_001"


def test_a_round_launched_on_top_of_a_failed_one_refuses_to_start(harness, server):
    """As a round launched by hand (UI, dagster asset materialize) after adding its partition."""
    assert harness.run_round(1).success
    server.responder = respond_with_a_duplicate
    assert not harness.run_round(2).success
    server.responder = respond
    before = len(server.request_log)
    result = harness.run_round(3)
    assert not result.success
    message = result.failure_data_for_node("seed_pool").error.message
    assert "round_002 is not done" in message and "run round_002 again" in message
    assert len(server.request_log) == before
