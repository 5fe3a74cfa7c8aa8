"""A round job in chat mode against a fake chat model: chat prompts go out as message lists
without the completion stops, answers are read by the chat parser, and the metadata says how
many could not be read."""

from __future__ import annotations

import pytest

from sipipeline.defs.resources import OpenAIEndpointResource
from sipipeline.method import chat_prompts
from sipipeline.method.vocabulary import DropReason, ParsedAs
from sipipeline_tests.support.fake_chat_model import respond_chat
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer
from sipipeline_tests.support.round_harness import RoundJobHarness


def _metadata(result, asset: str) -> dict:
    materialization = next(m for m in result.asset_materializations_for_node(asset))
    return {key: value.value for key, value in materialization.metadata.items()}


@pytest.mark.parametrize("structured", [False, True])
def test_a_chat_round_sends_messages_and_parses_chat_answers(tmp_path, structured):
    with FakeOpenAIServer(responder=respond_chat) as server:
        harness = RoundJobHarness(tmp_path / "home", tmp_path / "storage", server)
        try:
            harness.use_model(OpenAIEndpointResource(
                base_url=server.base_url, api_key="test-key", model="fake-chat", api="chat",
                structured_output=structured))
            result = harness.run_round(1, num_prompts=4)
            assert result.success
            log = server.completion_log()
            assert {e["path"] for e in log} == {"/v1/chat/completions"}
            assert all("stop" not in e["body"] for e in log)
            assert all(("response_format" in e["body"]) == structured for e in log)
            systems = {e["body"]["messages"][0]["content"].removesuffix(chat_prompts.JSON_NOTE)
                       for e in log}
            assert chat_prompts.GENERATION_SYSTEM in systems
            assert chat_prompts.CLASSIFICATION_SYSTEM in systems

            generated = harness.read("generated_instructions", 1)
            expected = ParsedAs.CHAT_JSON if structured else ParsedAs.CHAT_TEXT
            assert set(generated["parsed_as"]) == {expected}
            assert not generated["instruction"].str.startswith("Sure!").any()
            assert {"blacklisted_word", "too_short"} <= set(generated["reject_reason"].dropna())
            labels = harness.read("classification_labels", 1)
            instances = harness.read("instances", 1)
            unlabelled = set(labels.loc[labels["label_problem"].notna(), "task_id"])
            assert unlabelled == set(
                instances.loc[instances["drop_reason"] == DropReason.UNLABELLED, "task_id"])
            assert (instances["status"] == "kept").sum() > 0
            pool = harness.read("filtered_tasks", 1)
            assert (pool["origin"] == "machine").sum() > 0

            meta = _metadata(result, "classification_labels")
            assert meta["parse/style"] == ("chat_json" if structured else "chat")
            assert meta["parse/failures"] == len(unlabelled)
            assert meta["parse/failure_share"] == pytest.approx(len(unlabelled) / len(labels))
            assert _metadata(result, "generated_instructions")["parse/failure_share"] == 0.0
            assert "parse/failure_share" in _metadata(result, "instances")
        finally:
            harness.close()
