"""Unattended rounds on the deploy recipe: PostgreSQL instance, dagster-daemon, the run queue.

A throwaway PostgreSQL cluster on 127.0.0.1 holds the instance (deploy/dagster.yaml as is,
credentials from the environment); `dagster sensor start` turns the next-round sensor on, as the
README says; `dagster-daemon run -w deploy/workspace.yaml` then evaluates the sensor, dequeues
the runs and launches each in its own run worker with the multiprocess executor, against a fake
model on 127.0.0.1. Skipped, with the reason printed, only when PostgreSQL is not installed.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from sipipeline.defs.automation import SENSOR_NAME, STARTED_BY_TAG
from sipipeline.defs.partitions import round_key
from sipipeline.defs.storage import RoundStore
from sipipeline_tests.support.dagster_daemon import (
    DEPLOY_DIR,
    WORKSPACE,
    DagsterDaemon,
    dagster_cli,
)
from sipipeline_tests.support.dagster_dev import REPO_ROOT
from sipipeline_tests.support.fake_model import respond
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer
from sipipeline_tests.support.kill_helpers import journaled_samples
from sipipeline_tests.support.local_postgres import LocalPostgres, unavailable_reason
from sipipeline_tests.support.round_harness import RoundJobHarness

ROUNDS = 2
NUM_PROMPTS = 2
ROUND_TABLES = ["seed_pool", "generated_instructions", "classification_labels", "instances",
                "filtered_tasks", "dataset_stats"]
WAIT_FOR_ROUNDS_S = 900.0


@pytest.fixture
def postgres(request):
    reason = unavailable_reason()
    if reason is not None:
        message = f"{Path(__file__).name} skipped: {reason}"
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print(f"\nSKIPPED {message}", flush=True)  # on the terminal, never silently
        pytest.skip(message)
    with LocalPostgres() as cluster:
        yield cluster


@pytest.fixture
def deployment(tmp_path, postgres, monkeypatch):
    """DAGSTER_HOME with deploy/dagster.yaml, the code location's environment, a fake model."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(DEPLOY_DIR / "dagster.yaml", home / "dagster.yaml")
    with FakeOpenAIServer(responder=respond) as server:
        settings = {
            **postgres.env(), "DAGSTER_HOME": str(home),
            "SIPIPELINE_STORAGE": str(tmp_path / "storage"),
            "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "test-key",
            "SIPIPELINE_LLM_MODEL": "fake-model",
            "SIPIPELINE_MAX_ROUNDS": str(ROUNDS), "SIPIPELINE_NUM_PROMPTS": str(NUM_PROMPTS),
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("SIPIPELINE_LOCAL_DIR", raising=False)
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p))
        instance = dg.DagsterInstance.get()
        try:
            yield instance, server, tmp_path
        finally:
            instance.dispose()


def _round_runs(instance: dg.DagsterInstance) -> list[dg.RunRecord]:
    return sorted(instance.get_run_records(), key=lambda r: r.create_timestamp)


def _wait_for_rounds(instance: dg.DagsterInstance, daemon: DagsterDaemon, count: int) -> None:
    deadline = time.monotonic() + WAIT_FOR_ROUNDS_S
    while time.monotonic() < deadline:
        assert daemon.alive(), f"dagster-daemon exited:\n{daemon.log_tail()}"
        records = _round_runs(instance)
        failed = [r for r in records if r.dagster_run.status in (
            dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)]
        assert not failed, f"run {failed[0].dagster_run.run_id} ended " \
                           f"{failed[0].dagster_run.status}:\n{daemon.log_tail()}"
        done = [r for r in records if r.dagster_run.status == dg.DagsterRunStatus.SUCCESS]
        if len(done) >= count:
            return
        time.sleep(2)
    raise AssertionError(f"{count} rounds did not finish in time:\n{daemon.log_tail()}")


def _wait_until(condition, daemon: DagsterDaemon, failure: str, timeout_s: float = 600.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert daemon.alive(), f"dagster-daemon exited:\n{daemon.log_tail()}"
        assert time.monotonic() < deadline, f"{failure}:\n{daemon.log_tail()}"
        time.sleep(0.2)


def _event_types(instance: dg.DagsterInstance, run_id: str) -> list[dg.DagsterEventType]:
    return [e.dagster_event.event_type for e in instance.all_logs(run_id)
            if e.dagster_event is not None]


def test_the_daemon_runs_rounds_one_at_a_time_through_the_queue_across_a_restart(deployment):
    instance, server, tmp_path = deployment
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"

    env = dict(os.environ)
    dagster_cli(["sensor", "start", SENSOR_NAME, "-w", str(WORKSPACE)], env)
    journal = tmp_path / "storage" / "journal" / "llm_journal.sqlite"
    with DagsterDaemon(env, tmp_path / "daemon.log") as daemon:
        # Stop the daemon in the middle of round 1, once model responses are journaled...
        _wait_until(lambda: journaled_samples(journal) > 0, daemon,
                    "round 1 never called the model")
        assert daemon.stop_daemon_only() == 0
        (in_flight,) = _round_runs(instance)
        assert in_flight.dagster_run.status == dg.DagsterRunStatus.STARTED
        # ...and start it again: the round finishes and the sensor goes on to round 2.
        daemon.start()
        _wait_for_rounds(instance, daemon, ROUNDS)
        # The sensor stops at SIPIPELINE_MAX_ROUNDS: no third round is ever requested.
        time.sleep(1)
        records = _round_runs(instance)
    assert len(records) == ROUNDS, [r.dagster_run.tags for r in records]

    partitions = [r.dagster_run.tags.get("dagster/partition") for r in records]
    assert partitions == [round_key(n) for n in range(1, ROUNDS + 1)]
    for record in records:
        run = record.dagster_run
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags[STARTED_BY_TAG] == SENSOR_NAME
        assert run.tags["sipipeline/round_slot"] == "bootstrap"
        types = _event_types(instance, run.run_id)
        # Through the queue: enqueued on the sensor's request, then dequeued and launched by
        # the daemon's run coordinator (which reports RUN_STARTING), then started by its worker.
        assert types.count(dg.DagsterEventType.RUN_ENQUEUED) == 1
        assert types.index(dg.DagsterEventType.RUN_ENQUEUED) < types.index(
            dg.DagsterEventType.RUN_STARTING) < types.index(dg.DagsterEventType.RUN_START)
        # In its own run worker with the multiprocess executor: every step in its own process.
        logs = instance.all_logs(run.run_id)
        worker_pids = {e.dagster_event.pid for e in logs if e.dagster_event is not None and
                       e.dagster_event.event_type == dg.DagsterEventType.RUN_START}
        step_pids = {e.dagster_event.pid for e in logs if e.dagster_event is not None and
                     e.dagster_event.event_type == dg.DagsterEventType.STEP_START}
        assert len(worker_pids) == 1 and os.getpid() not in worker_pids
        # six assets plus their check steps, each in a process of its own
        assert len(step_pids) >= 6 and not step_pids & worker_pids
        assert any("multiprocess executor" in (e.user_message or "") for e in logs)

    # No journaled request was paid for twice, daemon restart included.
    paid = collections.Counter(server.request_identity(e) for e in server.paid_log())
    assert paid and max(paid.values()) == 1

    # Never overlapped: each round's run started after the previous one ended.
    for before, after in zip(records, records[1:], strict=False):
        assert after.start_time is not None and before.end_time is not None
        assert after.start_time >= before.end_time

    # The same tables as the in-process path with the same fake model and round size.
    daemon_store = RoundStore(base_path=str(tmp_path / "storage"))
    reference = RoundJobHarness(tmp_path / "ref-home", tmp_path / "ref-storage", server)
    try:
        for number in range(1, ROUNDS + 1):
            assert reference.run_round(number, num_prompts=NUM_PROMPTS).success
            for table in ROUND_TABLES:
                pd.testing.assert_frame_equal(daemon_store.read(table, round_key(number)),
                                              reference.read(table, number), obj=table)
    finally:
        reference.close()
