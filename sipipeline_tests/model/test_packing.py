"""Several prompts per completions request, journaled and paid per prompt."""

from __future__ import annotations

from collections import deque
from pathlib import Path

from sipipeline.model.jobs import Job
from sipipeline.model.packing import split_packed, take_pack
from sipipeline.model.types import CompletionRequest, SamplingParams
from sipipeline_tests.support.client_helpers import (
    PARAMS,
    expected_texts,
    make_client,
    requests_for,
)
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer, Fault


def test_split_packed_gives_each_prompt_its_choices_and_usage_share() -> None:
    response = {"id": "r", "choices": [
        {"index": 3, "text": "b1", "finish_reason": "stop"},
        {"index": 0, "text": "a0", "finish_reason": "stop"},
        {"index": 1, "text": "a1", "finish_reason": "length"},
        {"index": 2, "text": "b0", "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 8}}
    first, second = split_packed(response, api="completions", samples_per_prompt=2,
                                 prompt_sizes=[100, 200])
    assert first.texts == ["a0", "a1"] and first.finish_reasons == ["stop", "length"]
    assert second.texts == ["b0", "b1"]
    assert (first.prompt_tokens, second.prompt_tokens) == (10, 20)
    assert first.completion_tokens + second.completion_tokens == 8


def test_take_pack_groups_only_compatible_jobs_and_keeps_the_order() -> None:
    other = SamplingParams(max_tokens=99)
    jobs = [Job(CompletionRequest(f"p{i}", PARAMS if i != 2 else other), f"d{i}", [0])
            for i in range(5)]
    ready = deque(jobs[1:])
    pack = take_pack(jobs[0], ready, 3)
    assert [j.prompt_digest for j in pack] == ["d0", "d1", "d3"]
    assert [j.prompt_digest for j in ready] == ["d2", "d4"]
    assert take_pack(jobs[2], deque(), 1) == [jobs[2]]


def test_packed_requests_answer_every_prompt_in_fewer_requests(tmp_path: Path) -> None:
    with FakeOpenAIServer() as server:
        with make_client(server, tmp_path / "j.sqlite", prompts_per_request=4) as client:
            batch = requests_for(10, n=2)
            results = client.complete(batch, purpose="p")
            assert [[c.text for c in row] for row in results] == [
                expected_texts(r) for r in batch]
            log = server.completion_log()
            assert len(log) < 10 and any(isinstance(e["body"]["prompt"], list) for e in log)
            usage = client.usage("p")
            assert usage.requests == len(log) and usage.samples == 20
            assert usage.prompt_tokens == sum(
                len(r.prompt.split()) for r in batch)  # shared out, nothing lost
        # The journal keys every prompt on its own: a run asking single prompts pays nothing.
        with make_client(server, tmp_path / "j.sqlite", prompts_per_request=1) as client:
            again = client.complete(batch[3:7], purpose="p")
            assert all(c.from_journal for row in again for c in row)
            assert len(server.completion_log()) == len(log)


def test_a_failed_or_partial_pack_is_asked_again_prompt_by_prompt(tmp_path: Path) -> None:
    faults = ["500", "first_choice_textless", Fault("429", retry_after_s=0.01)]
    with FakeOpenAIServer(faults=faults) as server, \
            make_client(server, tmp_path / "j.sqlite", prompts_per_request=4,
                        max_in_flight=1) as client:
        batch = requests_for(8, n=1)
        results = client.complete(batch, purpose="p")
        assert [[c.text for c in row] for row in results] == [expected_texts(r) for r in batch]
    paid_prompts = []
    for entry in server.paid_log():
        prompt = entry["body"]["prompt"]
        paid_prompts += prompt if isinstance(prompt, list) else [prompt]
    # Every prompt answered once, except the one whose choice had no text (asked again).
    assert len(paid_prompts) == len(set(paid_prompts)) + 1


def test_an_endpoint_that_rejects_lists_gets_single_prompts(tmp_path: Path) -> None:
    with FakeOpenAIServer(reject_list_prompts=True) as server, \
            make_client(server, tmp_path / "j.sqlite", prompts_per_request=4) as client:
        batch = requests_for(6, n=1)
        results = client.complete(batch, purpose="p")
        assert [[c.text for c in row] for row in results] == [expected_texts(r) for r in batch]


def test_chat_requests_are_never_packed(tmp_path: Path) -> None:
    with FakeOpenAIServer() as server, \
            make_client(server, tmp_path / "j.sqlite", api="chat",
                        prompts_per_request=4) as client:
        client.complete(requests_for(5, n=1), purpose="p")
        assert len(server.completion_log()) == 5
