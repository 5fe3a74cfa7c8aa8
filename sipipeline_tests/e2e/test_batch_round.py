"""A round in batch delivery gives an online round's tables at half the cost; a round whose
batches outlive `batch_wait_s` is finished by `batch_completion_sensor`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import dagster as dg
import pandas.testing as pdt

from sipipeline.defs.batch_sensor import SENSOR_NAME
from sipipeline.defs.resources import BATCHES_PENDING_TAG, OpenAIEndpointResource
from sipipeline_tests.support.fake_batch_server import BatchScript, FakeBatchServer
from sipipeline_tests.support.fake_model import respond
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer
from sipipeline_tests.support.round_harness import RoundJobHarness

MODEL_TABLES = ("generated_instructions", "classification_labels", "instances",
                "filtered_tasks")
PRICES = {"price_prompt_per_million": 2.0, "price_completion_per_million": 4.0}


def endpoint(base_url: str, **fields) -> OpenAIEndpointResource:
    return OpenAIEndpointResource(base_url=base_url, api_key="test-key", model="fake-model",
                                  max_in_flight=4, **PRICES, **fields)


def online_round(tmp_path: Path) -> RoundJobHarness:
    with FakeOpenAIServer(responder=respond) as server:
        harness = RoundJobHarness(tmp_path / "online-home", tmp_path / "online", server,
                                  endpoint(server.base_url))
        assert harness.run_round(1, num_prompts=4).success
    return harness


def without_journal_key(table):
    """A round table without `journal_key`: it names the journal row, whose key includes the
    endpoint, and the online and batch rounds here talk to two fake endpoints."""
    return table.drop(columns=["journal_key"], errors="ignore")


def journal_cost(storage: Path) -> float:
    with sqlite3.connect(storage / "journal" / "llm_journal.sqlite") as db:
        return db.execute("SELECT SUM(cost_usd) FROM calls").fetchone()[0]


def materialization(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events()
                if e.asset_key == dg.AssetKey(asset)]
    return event.materialization.metadata


def test_a_batch_round_equals_an_online_round_at_half_the_cost(tmp_path):
    online = online_round(tmp_path)
    with FakeBatchServer(responder=respond) as server:
        harness = RoundJobHarness(tmp_path / "home", tmp_path / "batch", server,
                                  endpoint(server.base_url, delivery="batch",
                                           batch_wait_s=300, batch_poll_s=0.0))
        result = harness.run_round(1, num_prompts=4)
        assert result.success
        assert set(server.submitted.values()) == {1}
    for table in MODEL_TABLES:
        pdt.assert_frame_equal(without_journal_key(harness.read(table, 1)),
                               without_journal_key(online.read(table, 1)))
    assert journal_cost(tmp_path / "batch") * 2 == journal_cost(tmp_path / "online")
    metadata = materialization(result, "generated_instructions")
    assert metadata["llm/delivery"].value == "batch"
    paid, online_usd = (metadata["llm/paid_usd"].value,
                        metadata["llm/online_equivalent_usd"].value)
    assert paid > 0 and abs(online_usd - 2 * paid) < 1e-12
    assert metadata["llm/cost_usd"].value == paid
    assert metadata["batch/samples_done"].value == metadata["batch/samples_total"].value == 4
    run_log = [e.user_message for e in harness.instance.all_logs(result.run_id)]
    assert any("generated_instructions: 4/4 samples answered" in m for m in run_log)
    assert any("batch_1 finalizing" in m for m in run_log)
    online.close()
    harness.close()


def run_requested(harness: RoundJobHarness, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    return harness.job.execute_in_process(
        partition_key=request.partition_key, instance=harness.instance,
        run_config=request.run_config, tags=request.tags, raise_on_error=False)


def test_batches_that_outlive_the_wait_are_finished_through_the_sensor(tmp_path):
    online = online_round(tmp_path)
    with FakeBatchServer(responder=respond,
                         scripts=[BatchScript(hold=True, end="expired", answered_fraction=0.5)]
                         ) as server:
        harness = RoundJobHarness(tmp_path / "home", tmp_path / "batch", server,
                                  endpoint(server.base_url, delivery="batch", batch_wait_s=0,
                                           batch_poll_s=0.0))
        first = harness.run_round(1, num_prompts=4)
        assert not first.success
        failure = next(e for e in first.all_events if e.is_step_failure)
        assert "batches pending" in failure.step_failure_data.user_failure_data.description
        assert failure.step_failure_data.user_failure_data.metadata[
            "batch/requests_in_progress"].value == 4
        assert harness.instance.get_run_by_id(first.run_id).tags[BATCHES_PENDING_TAG] == "true"
        sensor = harness.defs.resolve_sensor_def(SENSOR_NAME)
        cursor, launched, runs = None, 0, [first]
        server.release_batches()
        for _ in range(60):
            with dg.build_sensor_context(instance=harness.instance, cursor=cursor,
                                         resources=harness.resources,
                                         definitions=harness.defs) as context:
                result = sensor(context)
            if isinstance(result, dg.SkipReason):
                continue
            cursor = result.cursor or cursor
            for request in result.run_requests or []:
                launched += 1
                runs.append(run_requested(harness, request))
            if runs[-1].success:
                break
        assert runs[-1].success, "the sensor never finished the round"
        assert launched >= 3  # generated_instructions, classification_labels, instances
        assert set(server.submitted.values()) <= {1, 2}
        expired = list(server.batches.values())[0]
        resent = list(server.batches.values())[1]
        assert len(resent.lines) == len(expired.lines) // 2  # only the missing ones
    for table in MODEL_TABLES:
        pdt.assert_frame_equal(without_journal_key(harness.read(table, 1)),
                               without_journal_key(online.read(table, 1)))
    online.close()
    harness.close()
