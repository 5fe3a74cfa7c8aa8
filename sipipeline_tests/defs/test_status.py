"""`sipipeline status`: rounds done and failed, pool, tasks added, spend, staleness, automation."""

from __future__ import annotations

import json

import pytest
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    ScheduleInstigatorData,
)

from sipipeline.cli import main
from sipipeline.defs.automation import SCHEDULE_NAME
from sipipeline.defs.status import collect_status, status_text
from sipipeline_tests.support.fake_model import respond
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer, prompt_list_of
from sipipeline_tests.support.round_harness import RoundJobHarness


@pytest.fixture(scope="module")
def rounds(tmp_path_factory):
    """Rounds 1 and 2 done, round 1 re-run with fresh samples (round 2 now stale), and a
    round 3 that failed (the endpoint refused the credentials)."""
    root = tmp_path_factory.mktemp("status")
    with FakeOpenAIServer(responder=respond) as server:
        harness = RoundJobHarness(root / "home", root / "storage", server)
        try:
            for number in (1, 2):
                assert harness.run_round(number, num_prompts=3).success
            assert harness.run_round(1, num_prompts=3, random_seed=1).success
            server.set_faults(lambda number, body: "401")
            assert not harness.run_round(3, num_prompts=3).success
            server.set_faults(None)
            yield harness
        finally:
            harness.close()


def test_status_counts_rounds_pool_added_tasks_and_spend(rounds):
    harness = rounds
    status = collect_status(harness.instance, harness.store, harness.defs)
    assert [(r.key, r.state) for r in status.rounds] == [
        ("round_001", "done"), ("round_002", "done"), ("round_003", "failed")]
    pool = harness.read("filtered_tasks", 2)
    assert status.pool_size == len(pool)
    assert status.machine_tasks == int((pool["origin"] == "machine").sum())
    by_key = {r.key: r for r in status.rounds}
    assert by_key["round_002"].added == int((pool["round"] == 2).sum())
    assert by_key["round_002"].pool_size == len(pool)
    assert by_key["round_003"].added is None
    # The journal keeps a call per prompt; a completions request may carry several.
    paid = sum(len(prompt_list_of(e["path"], e["body"])) for e in harness.server.paid_log())
    assert sum(s.calls for s in status.spend) == paid
    assert {s.purpose for s in status.spend} == {
        "generated_instructions", "classification_labels", "instances"}
    assert not status.sensor_on and not status.schedule_on
    assert "round_003" in status.next_round


def test_status_names_what_is_stale_with_its_cause(rounds):
    status = collect_status(rounds.instance, rounds.store, rounds.defs)
    stale = [line for line in status.stale if line.startswith("seed_pool[round_002]")]
    assert stale and "round_handoff[round_002]" in stale[0]
    assert not any("[round_001]" in line.split(":")[0] for line in status.stale)


def _schedule_state(status: InstigatorStatus) -> InstigatorState:
    origin = RemoteInstigatorOrigin(
        RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("sipipeline.definitions"),
                               "__repository__"), SCHEDULE_NAME)
    return InstigatorState(origin, InstigatorType.SCHEDULE, status,
                           ScheduleInstigatorData("0 2 * * *", start_timestamp=0.0))


def test_status_shows_whether_the_schedule_is_on_and_fits_one_screen(rounds):
    instance = rounds.instance
    state = instance.add_instigator_state(_schedule_state(InstigatorStatus.RUNNING))
    try:
        status = collect_status(instance, rounds.store, rounds.defs)
        assert status.schedule_on and not status.sensor_on
        text = status_text(status)
        assert "Rounds: 2 done, 1 failed" in text
        assert f"schedule {SCHEDULE_NAME} ON" in text
        assert len(text.splitlines()) <= 40 and max(map(len, text.splitlines())) <= 120
    finally:
        instance.delete_instigator_state(state.instigator_origin_id, state.selector_id)


def test_the_command_reads_the_instance_of_dagster_home(rounds, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(rounds.instance.root_directory))
    assert main(["status", "--json", "--storage", str(rounds.storage)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["rounds_done"] == 2 and answer["rounds_failed"] == 1
    assert answer["pool_size"] == len(rounds.read("filtered_tasks", 2))
