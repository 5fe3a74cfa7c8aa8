"""The next-round sensor and the round schedule: the decision, then both against real instances."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus
from dagster._core.test_utils import create_run_for_test

from sipipeline.definitions import defs
from sipipeline.defs.automation import (
    AFTER_RUN_TAG,
    MAX_ROUNDS_ENV,
    SENSOR_NAME,
    STARTED_BY_TAG,
    TARGET_POOL_SIZE_ENV,
    AutomationSettings,
    AutomationSettingsError,
    RoundRun,
    build_round_schedule,
    decide_next_round,
    next_round_sensor,
    round_schedule,
    round_to_run,
    sensor_is_running,
)
from sipipeline.defs.partitions import bootstrap_rounds
from sipipeline_tests.support.fake_model import respond
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer
from sipipeline_tests.support.round_harness import RoundJobHarness

POOL_KEY = dg.AssetKey("filtered_tasks")
SETTINGS = AutomationSettings(max_rounds=5, target_pool_size=None)


def decide(latest=None, in_flight=(), handed_off=(), sizes=None, settings=SETTINGS):
    sizes = sizes or {}
    return decide_next_round(latest or {}, list(in_flight), set(handed_off), sizes.get,
                             settings)


def ok(number: int, run_id: str = "") -> RoundRun:
    return RoundRun(number, dg.DagsterRunStatus.SUCCESS, run_id or f"run{number:03d}aaaa")


# ------------------------------------------------------------------ the decision
def test_an_empty_instance_starts_the_first_round():
    decision = decide()
    assert decision.round_number == 1 and decision.partition_key == "round_001"
    assert decision.after_run_id is None


def test_after_a_successful_round_the_next_one_starts():
    decision = decide({1: ok(1), 2: ok(2, "abc")}, handed_off={1, 2}, sizes={2: 190})
    assert decision.partition_key == "round_003" and decision.after_run_id == "abc"
    assert "190 tasks" in decision.reason


def test_nothing_starts_while_any_round_is_queued_or_running():
    running = RoundRun(2, dg.DagsterRunStatus.QUEUED, "feedbeef1234")
    decision = decide({1: ok(1), 2: running}, in_flight=[running], handed_off={1})
    assert decision.round_number is None
    assert "round_002 (queued, run feedbeef)" in decision.reason
    # Even a re-run of an old round blocks the next one.
    rerun = RoundRun(1, dg.DagsterRunStatus.STARTED, "0123456789")
    assert decide({1: rerun, 2: ok(2)}, in_flight=[rerun], handed_off={1, 2}
                  ).round_number is None


@pytest.mark.parametrize("status", [dg.DagsterRunStatus.FAILURE,
                                    dg.DagsterRunStatus.CANCELED])
def test_a_round_whose_last_run_did_not_succeed_is_not_built_on(status):
    decision = decide({1: ok(1), 2: RoundRun(2, status, "badc0ffee")}, handed_off={1, 2})
    assert decision.round_number is None
    assert f"round_002 (run badc0ffe) ended {status.value}" in decision.reason


def test_a_partly_run_round_waits_for_its_pool():
    decision = decide({1: ok(1), 2: ok(2)}, handed_off={1})
    assert decision.round_number is None
    assert "round_002 has not handed its pool on" in decision.reason


def test_rounds_stop_at_the_maximum_and_at_the_target_pool_size():
    latest, done = {n: ok(n) for n in (1, 2, 3)}, {1, 2, 3}
    assert decide(latest, handed_off=done,
                  settings=AutomationSettings(max_rounds=3)).round_number is None
    assert decide(latest, handed_off=done,
                  settings=AutomationSettings(max_rounds=4)).round_number == 4
    target = AutomationSettings(max_rounds=10, target_pool_size=300)
    assert decide(latest, handed_off=done, sizes={3: 299}, settings=target).round_number == 4
    stopped = decide(latest, handed_off=done, sizes={3: 300}, settings=target)
    assert stopped.round_number is None and "target of 300" in stopped.reason


def test_a_handed_off_round_without_run_history_still_counts():
    assert decide({}, handed_off={1}).partition_key == "round_002"


def test_a_manual_start_reruns_a_round_that_is_not_done_and_otherwise_continues():
    assert round_to_run({}, set()).partition_key == "round_001"
    assert round_to_run({1: ok(1)}, {1}).partition_key == "round_002"
    failed_run = RoundRun(2, dg.DagsterRunStatus.FAILURE, "badc0ffee")
    failed = round_to_run({1: ok(1), 2: failed_run}, {1, 2})
    assert failed.partition_key == "round_002" and "ended FAILURE" in failed.reason
    assert round_to_run({1: ok(1), 2: ok(2)}, {1}).partition_key == "round_002"
    assert round_to_run({}, {1, 2}).partition_key == "round_003"


def test_settings_from_the_environment():
    assert AutomationSettings.from_env({}) == AutomationSettings(10, None)
    assert AutomationSettings.from_env({MAX_ROUNDS_ENV: " 3 ", TARGET_POOL_SIZE_ENV: "500"}
                                       ) == AutomationSettings(3, 500)
    for bad in ("three", "0", "-2"):
        with pytest.raises(AutomationSettingsError, match=MAX_ROUNDS_ENV):
            AutomationSettings.from_env({MAX_ROUNDS_ENV: bad})


# ------------------------------------------------------------------ definitions
def test_the_sensor_and_schedule_are_registered_off_and_target_the_round_job():
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    schedule = defs.resolve_schedule_def("round_schedule")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert sensor.job_name == schedule.job_name == "bootstrap_round_job"
    assert schedule.cron_schedule == "0 2 * * *" and schedule.execution_timezone == "UTC"
    custom = build_round_schedule("30 4 * * 1", "Europe/Berlin")
    assert custom.cron_schedule == "30 4 * * 1" and custom.execution_timezone == "Europe/Berlin"


# ------------------------------------------------------------------ against a real instance
@pytest.fixture(scope="module")
def one_round(tmp_path_factory):
    """One real round run through the job; tests add synthetic runs on top of it."""
    root = tmp_path_factory.mktemp("automation")
    with FakeOpenAIServer(responder=respond) as server:
        harness = RoundJobHarness(root / "home", root / "storage", server)
        result = harness.run_round(1)
        assert result.success
        yield harness, result.run_id
        harness.close()


@pytest.fixture
def instance(one_round, monkeypatch):
    """The instance after round 1; synthetic runs and partitions added by a test are removed."""
    harness, _ = one_round
    monkeypatch.delenv(MAX_ROUNDS_ENV, raising=False)
    monkeypatch.delenv(TARGET_POOL_SIZE_ENV, raising=False)
    before = {run.run_id for run in harness.instance.get_runs()}
    partitions = set(harness.instance.get_dynamic_partitions(bootstrap_rounds.name))
    yield harness.instance
    for run in harness.instance.get_runs():
        if run.run_id not in before:
            harness.instance.delete_run(run.run_id)
    for key in set(harness.instance.get_dynamic_partitions(bootstrap_rounds.name)) - partitions:
        harness.instance.delete_dynamic_partition(bootstrap_rounds.name, key)


def evaluate_sensor(instance: dg.DagsterInstance):
    """As the sensor daemon evaluates a tick (it validates partition keys with the instance)."""
    context = dg.build_sensor_context(instance_ref=instance.get_ref(), definitions=defs,
                                      sensor_name=SENSOR_NAME)
    with partition_loading_context(dynamic_partitions_store=instance):
        return next_round_sensor.evaluate_tick(context)


def round_run(instance: dg.DagsterInstance, key: str, status: dg.DagsterRunStatus):
    return create_run_for_test(instance, job_name="bootstrap_round_job", status=status,
                               tags={"dagster/partition": key})


def test_the_sensor_requests_the_next_round_and_adds_its_partition(instance, one_round):
    _, first_run_id = one_round
    result = evaluate_sensor(instance)
    assert result.skip_message is None
    [request] = result.run_requests
    assert request.partition_key == "round_002"
    assert request.run_key == f"round_002:after:{first_run_id}"
    assert request.tags[STARTED_BY_TAG] == SENSOR_NAME
    assert request.tags[AFTER_RUN_TAG] == first_run_id
    [added] = result.dynamic_partitions_requests
    assert added.partitions_def_name == "bootstrap_round" and added.partition_keys == ["round_002"]


@pytest.mark.parametrize("status", [dg.DagsterRunStatus.NOT_STARTED,
                                    dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED])
def test_the_sensor_waits_while_a_round_is_in_flight(instance, status):
    run = round_run(instance, "round_002", status)
    result = evaluate_sensor(instance)
    assert not result.run_requests
    assert f"round_002 ({status.value.lower()}, run {run.run_id[:8]})" in result.skip_message


def test_the_sensor_does_not_build_on_a_failed_round(instance):
    run = round_run(instance, "round_002", dg.DagsterRunStatus.FAILURE)
    result = evaluate_sensor(instance)
    assert not result.run_requests
    assert f"round_002 (run {run.run_id[:8]}) ended FAILURE" in result.skip_message


def test_the_sensor_stops_at_the_configured_limits(instance, monkeypatch):
    monkeypatch.setenv(MAX_ROUNDS_ENV, "1")
    assert "maximum of 1 rounds" in evaluate_sensor(instance).skip_message
    monkeypatch.setenv(MAX_ROUNDS_ENV, "5")
    records = instance.fetch_materializations(dg.AssetKey("filtered_tasks"), limit=1).records
    pool_size = records[0].asset_materialization.metadata["pool_size"].value
    assert pool_size > 175
    monkeypatch.setenv(TARGET_POOL_SIZE_ENV, str(pool_size))
    assert f"{pool_size} tasks, at or above the target" in evaluate_sensor(instance).skip_message
    monkeypatch.setenv(TARGET_POOL_SIZE_ENV, str(pool_size + 1))
    assert evaluate_sensor(instance).run_requests[0].partition_key == "round_002"


@pytest.fixture
def synthetic_instance(tmp_path):
    """An instance where rounds 1 and 2 are recorded as done (runs and hand-off events)."""
    instance = dg.DagsterInstance.local_temp(tempdir=str(tmp_path))
    instance.add_dynamic_partitions(bootstrap_rounds.name, ["round_001", "round_002"])
    runs = []
    for key, next_key, size in (("round_001", "round_002", 190),
                                ("round_002", "round_003", 200)):
        runs.append(round_run(instance, key, dg.DagsterRunStatus.SUCCESS))
        instance.report_runless_asset_event(dg.AssetObservation(
            "round_handoff", partition=next_key, metadata={"pool_size": size}))
    yield instance, runs[-1]
    instance.dispose()


def test_the_sensor_follows_the_latest_successful_round(synthetic_instance):
    instance, run = synthetic_instance
    [request] = evaluate_sensor(instance).run_requests
    assert request.partition_key == "round_003"
    assert request.run_key == f"round_003:after:{run.run_id}"


def evaluate_schedule(instance: dg.DagsterInstance, schedule=round_schedule):
    context = dg.build_schedule_context(instance=instance,
                                        repository_def=defs.get_repository_def())
    with partition_loading_context(dynamic_partitions_store=instance):
        return schedule.evaluate_tick(context)


def test_the_schedule_starts_the_next_round_and_registers_its_partition(synthetic_instance):
    instance, run = synthetic_instance
    assert "round_003" not in instance.get_dynamic_partitions(bootstrap_rounds.name)
    result = evaluate_schedule(instance)
    [request] = result.run_requests
    assert request.partition_key == "round_003"
    assert request.tags[STARTED_BY_TAG] == "round_schedule"
    assert request.tags[AFTER_RUN_TAG] == run.run_id
    assert "round_003" in instance.get_dynamic_partitions(bootstrap_rounds.name)


def test_the_schedule_skips_while_a_round_runs(instance):
    round_run(instance, "round_002", dg.DagsterRunStatus.STARTED)
    result = evaluate_schedule(instance)
    assert not result.run_requests and "already queued or running" in result.skip_message


def _sensor_state(status: InstigatorStatus) -> InstigatorState:
    origin = RemoteInstigatorOrigin(
        RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("sipipeline.definitions"),
                               "__repository__"), SENSOR_NAME)
    return InstigatorState(origin, InstigatorType.SENSOR, status)


def test_the_schedule_stands_aside_while_the_sensor_is_on(instance):
    assert not sensor_is_running(instance)
    state = instance.add_instigator_state(_sensor_state(InstigatorStatus.RUNNING))
    try:
        assert sensor_is_running(instance)
        result = evaluate_schedule(instance)
        assert not result.run_requests and "next_round_sensor is running" in result.skip_message
        instance.update_instigator_state(state.with_status(InstigatorStatus.STOPPED))
        assert not sensor_is_running(instance)
        assert evaluate_schedule(instance).run_requests[0].partition_key == "round_002"
    finally:
        instance.delete_instigator_state(state.instigator_origin_id, state.selector_id)
