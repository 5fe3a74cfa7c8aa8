"""The yield guard in a round job: a model that writes garbage costs K requests, not the
round's budget; the round completes with what it has and says so; re-runs decide the same."""

from __future__ import annotations

from sipipeline.defs.resources import OpenAIEndpointResource
from sipipeline_tests.support.fake_model import respond
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer, prompt_list_of
from sipipeline_tests.support.round_harness import RoundJobHarness


def garbage(prompt_text: str, body: dict, sample_index: int) -> tuple[str, str]:
    """A model that never writes a usable instruction (instances still answered normally)."""
    if "Write a numbered list" in prompt_text:
        return " Draw it.\n10. Plot a graph of the data in the file.", "stop"
    return respond(prompt_text, body, sample_index)


def _generation_requests(server: FakeOpenAIServer) -> int:
    """Generation prompts the server was sent (prompts packed into one request count apart)."""
    return sum("Write a numbered list" in prompt for e in server.completion_log()
               for prompt in prompt_list_of(e["path"], e["body"]))


def _metadata(result) -> dict:
    materialization = next(iter(result.asset_materializations_for_node(
        "generated_instructions")))
    return {key: value.value for key, value in materialization.metadata.items()}


def one_prompt_per_request(tmp_path, server: FakeOpenAIServer) -> RoundJobHarness:
    """A harness whose requests carry one prompt each, so requests and prompts count alike."""
    return RoundJobHarness(tmp_path / "home", tmp_path / "storage", server,
                           llm=OpenAIEndpointResource(base_url=server.base_url,
                                                      api_key="test-key", model="fake-model",
                                                      max_in_flight=4, prompts_per_request=1))


def _guard(requests: int) -> dict:
    return {"generated_instructions": {"config": {
        "num_prompts": 12, "random_seed": 0, "yield_guard_requests": requests,
        "yield_guard_min_accepted_share": 0.1}}}


def test_a_garbage_model_is_stopped_after_k_requests_and_the_round_completes(tmp_path):
    with FakeOpenAIServer(responder=garbage) as server:
        harness = one_prompt_per_request(tmp_path, server)
        try:
            result = harness.run_round(1, extra_config=_guard(4))
            assert result.success
            assert _generation_requests(server) == 4
            metadata = _metadata(result)
            assert metadata["yield_guard/stopped"] is True
            assert metadata["yield_guard/skipped_requests"] == 8
            assert metadata["yield_guard/accepted_share"] == 0.0
            assert metadata["funnel/requests"] == 4
            assert metadata["llm/requests"] == 4.0
            generated = harness.read("generated_instructions", 1)
            assert generated["request_id"].nunique() == 4
            logs = [entry.user_message for entry in harness.instance.all_logs(result.run_id)]
            assert any("yield guard" in m and "stopped generating" in m for m in logs)

            # Re-run: the first K answers come from the journal and decide the same way.
            again = harness.run_round(1, extra_config=_guard(4))
            assert again.success and _generation_requests(server) == 4
            assert _metadata(again)["yield_guard/stopped"] is True
            # The guard off: only the requests the guard saved are sent now.
            harness.run_round(1, extra_config=_guard(0))
            assert _generation_requests(server) == 12
        finally:
            harness.close()


def test_a_good_model_passes_the_guard_and_sends_every_request(tmp_path):
    with FakeOpenAIServer(responder=respond) as server:
        harness = one_prompt_per_request(tmp_path, server)
        try:
            result = harness.run_round(1, extra_config=_guard(4))
            assert result.success
            assert _generation_requests(server) == 12
            metadata = _metadata(result)
            assert metadata["yield_guard/stopped"] is False
            assert metadata["yield_guard/accepted_share"] >= 0.1
            assert metadata["funnel/requests"] == 12
        finally:
            harness.close()
