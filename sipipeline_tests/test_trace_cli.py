"""`sipipeline trace` on ids from a two-round fake run: the exact prompt and completion
journaled for the record, and decisions that match the round tables."""

from __future__ import annotations

import json

import pytest

from sipipeline.cli import main
from sipipeline.model.journal import ResponseJournal
from sipipeline.model.keys import sample_key
from sipipeline_tests.support.fake_model import respond
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer, prompt_list_of
from sipipeline_tests.support.round_harness import RoundJobHarness


@pytest.fixture(scope="module")
def two_rounds(tmp_path_factory):
    """Two fake-model rounds, run once for the module's read-only tests."""
    root = tmp_path_factory.mktemp("trace")
    with FakeOpenAIServer(responder=respond) as server:
        harness = RoundJobHarness(root / "home", root / "storage", server)
        try:
            for number in (1, 2):
                assert harness.run_round(number, num_prompts=4).success
            yield harness
        finally:
            harness.close()


def _trace(harness, record_id, capsys) -> dict:
    assert main(["trace", record_id, "--json", "--storage", str(harness.storage)]) == 0
    return json.loads(capsys.readouterr().out)


def _sent_prompts(harness) -> set[str]:
    """Every prompt the server was sent (a completions request may carry several)."""
    return {prompt for entry in harness.server.completion_log()
            for prompt in prompt_list_of(entry["path"], entry["body"])}


def _journaled(harness, key: str) -> tuple:
    journal = ResponseJournal(str(harness.store.journal_path()))
    try:
        return journal.lookup([key])[key]
    finally:
        journal.close()


def _assert_request_is_the_journaled_one(harness, request: dict) -> None:
    text, finish, prompt_tokens, completion_tokens = _journaled(harness, request["journal_key"])
    assert request["completion"] == text and request["finish_reason"] == finish
    assert request["prompt_tokens"] == prompt_tokens
    assert request["completion_tokens"] == completion_tokens
    assert request["prompt"] in _sent_prompts(harness)  # the exact text the model was sent
    assert request["journal_key"] == sample_key(request["prompt_key"], 0)
    assert request["cost_usd"] is not None


def test_a_task_traces_to_its_prompt_completion_decisions_and_instances(two_rounds, capsys):
    harness = two_rounds
    generated = harness.read("generated_instructions", 2)
    pool = harness.read("filtered_tasks", 2)
    added = pool[pool["round"] == 2].iloc[0]
    row = generated[generated["task_id"] == added["task_id"]].iloc[0]

    trace = _trace(harness, added["task_id"], capsys)
    assert trace["kind"] == "task" and trace["round"] == "round_002" and trace["in_pool"]
    request = trace["generation_request"]
    _assert_request_is_the_journaled_one(harness, request)
    assert request["prompt"] == row["prompt"]
    assert request["purpose"] == "generated_instructions"
    assert respond(request["prompt"], {}, 0)[0].startswith(request["completion"])
    assert row["instruction"] in request["completion"]
    assert [t["task_id"] for t in trace["in_context"]] == list(row["in_context_ids"])
    # Neighbours are stored by id and score; the trace shows their texts, from the pool.
    text_of = dict(zip(pool["task_id"], pool["instruction"], strict=True))
    assert trace["most_similar"] == [{**s, "instruction": text_of[s["task_id"]]}
                                     for s in row["most_similar"]]
    assert all(set(s) == {"task_id", "score"} for s in row["most_similar"])
    outcomes = {d["stage"]: d["outcome"] for d in trace["decisions"]}
    assert set(outcomes.values()) == {"passed"}

    labels = harness.read("classification_labels", 2)
    label = labels[labels["task_id"] == added["task_id"]].iloc[0]
    assert trace["classification"]["raw_answer"] == label["raw_answer"]
    _assert_request_is_the_journaled_one(harness, trace["classification"]["request"])
    assert trace["classification"]["request"]["completion"] == label["raw_answer"]

    instances = harness.read("instances", 2)
    mine = instances[instances["task_id"] == added["task_id"]]
    assert [(i["instance_id"], i["status"], i["drop_reason"]) for i in trace["instances"]] == [
        (r.instance_id, r.status, r.drop_reason if isinstance(r.drop_reason, str) else None)
        for r in mine.itertuples()]
    _assert_request_is_the_journaled_one(harness, trace["instances_request"])


def test_rejected_candidates_show_the_rule_that_removed_them(two_rounds, capsys):
    harness = two_rounds
    generated = harness.read("generated_instructions", 1)
    rejected = generated[generated["status"] == "rejected"]
    assert len(rejected)
    for row in rejected.itertuples():
        trace = _trace(harness, row.candidate_id, capsys)
        assert trace["kind"] == "candidate" and not trace["in_pool"]
        outcomes = {d["stage"]: d["outcome"] for d in trace["decisions"]}
        stage = "novel" if row.reject_reason == "similar_to_pool" else row.reject_reason
        assert outcomes[stage] == "removed"
        assert list(outcomes.values()).count("removed") == 1
        assert outcomes["added_to_pool"] == "not reached"
        _assert_request_is_the_journaled_one(harness, trace["generation_request"])


def test_an_instance_traces_to_its_task_and_round_1_tasks_to_their_later_uses(two_rounds,
                                                                              capsys):
    harness = two_rounds
    instances = harness.read("instances", 1)
    instance = instances.iloc[0]
    trace = _trace(harness, instance["instance_id"], capsys)
    assert trace["kind"] == "instance"
    assert trace["instance"]["instance_id"] == instance["instance_id"]
    assert trace["candidate"]["task_id"] == instance["task_id"]
    reason = instance["drop_reason"]
    assert trace["instance"]["drop_reason"] == (reason if isinstance(reason, str) else None)

    round_2 = harness.read("generated_instructions", 2)
    used = {task_id for ids in round_2["in_context_ids"] for task_id in ids}
    pool_1 = harness.read("filtered_tasks", 1)
    machine = [t for t in pool_1.loc[pool_1["origin"] == "machine", "task_id"] if t in used]
    assert machine, "round 2 shows round-1 tasks in context"
    trace = _trace(harness, machine[0], capsys)
    expected = set(round_2.loc[[machine[0] in ids for ids in round_2["in_context_ids"]],
                               "request_id"])
    assert {u["request_id"] for u in trace["used_in_context_by"]} == expected
    assert {u["round"] for u in trace["used_in_context_by"]} == {"round_002"}


def test_text_output_and_unknown_ids(two_rounds, capsys):
    harness = two_rounds
    task_id = harness.read("filtered_tasks", 1).query("origin == 'machine'")["task_id"].iloc[0]
    assert main(["trace", task_id, "--storage", str(harness.storage)]) == 0
    text = capsys.readouterr().out
    assert "Decisions:" in text and "--- prompt ---" in text and "--- completion ---" in text
    assert main(["trace", "mi-nothing", "--storage", str(harness.storage)]) == 1
    assert "no task, candidate or instance" in capsys.readouterr().err


def test_a_seed_task_traces_to_every_request_that_showed_it(two_rounds, capsys):
    harness = two_rounds
    uses = {}
    for number in (1, 2):
        generated = harness.read("generated_instructions", number)
        for row in generated.itertuples():
            for task_id in row.in_context_ids:
                if task_id.startswith("seed_task_"):
                    uses.setdefault(task_id, set()).add(row.request_id)
    seed_id, requests = max(uses.items(), key=lambda item: len(item[1]))
    trace = _trace(harness, seed_id, capsys)
    assert trace["kind"] == "seed_task"
    assert {u["request_id"] for u in trace["used_in_context_by"]} == requests
