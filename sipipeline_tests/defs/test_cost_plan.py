"""The cost plan against real rounds on the fake model: the estimate is what a round spends."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import pytest

from sipipeline.defs.cost_plan import estimate_rounds, journal_path
from sipipeline.defs.resources import OpenAIEndpointResource
from sipipeline.method import prompts
from sipipeline.method.seeds import load_seed_tasks
from sipipeline.model.plan import BASIS_JOURNAL, BASIS_PROMPTS
from sipipeline.model.pricing import TokenPrice
from sipipeline.paths import DEFAULT_SEED_FILE
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer
from sipipeline_tests.support.round_harness import RoundJobHarness

PRICE = TokenPrice(prompt=2.0, completion=6.0)
MODEL_STEPS = ("generated_instructions", "classification_labels", "instances")


def _spent(result) -> tuple[float, float]:
    """(spent, estimated) of a round, summed over its model-calling assets' metadata."""
    spent = estimated = 0.0
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        if materialization.asset_key.path[-1] in MODEL_STEPS:
            spent += materialization.metadata["sipipeline/cost_usd"].value
            estimated += materialization.metadata["sipipeline/estimated_cost_usd"].value
    return spent, estimated


def fixed_counts(prompt: str, body: dict, sample_index: int) -> tuple[str, str]:
    """A fake model whose answers have fixed token counts: five fresh seven-word tasks per
    generation prompt, a one-word label, one fixed instance."""
    if prompts.GENERATION_HEADER in prompt:
        start = len(re.findall(r"^\d+\. ", prompt, flags=re.MULTILINE)) + 1
        digest = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
        items = [" ".join(["Explain"] + [f"zq{digest[(6 * i + k) % 60:][:4]}{i}{k}"
                                         for k in range(6)]) + "." for i in range(5)]
        lines = [f" {items[0]}"] + [f"{start + i}. {t}" for i, t in enumerate(items[1:], 1)]
        return "\n".join(lines) + "\n\n", "stop"
    if prompts.CLASSIFICATION_HEADER in prompt:
        return " No", "stop"
    return "Example 1\nInput: a fixed case\nOutput: a fixed answer\n\n", "stop"


@pytest.fixture
def pipeline(tmp_path) -> Iterator[RoundJobHarness]:
    server = FakeOpenAIServer(responder=fixed_counts).start()
    llm = OpenAIEndpointResource(base_url=server.base_url, api_key="test-key",
                                 model="fake-model", max_in_flight=4,
                                 price_prompt_per_million=PRICE.prompt,
                                 price_completion_per_million=PRICE.completion)
    yield RoundJobHarness(tmp_path / "home", tmp_path / "storage", server, llm)
    server.stop()


def test_without_a_journal_the_plan_is_an_upper_bound_from_prompt_sizes(tmp_path) -> None:
    pool = load_seed_tasks(str(DEFAULT_SEED_FILE))
    [estimate] = estimate_rounds(pool, 1, 1, 5, tmp_path / "none.sqlite", 8)
    assert estimate.bases() == {BASIS_PROMPTS}
    generation = estimate.steps[0]
    assert generation.requests == 5 and generation.completion_tokens == 5 * 1024
    assert estimate.batch_cost_usd(PRICE) == pytest.approx(estimate.cost_usd(PRICE) / 2)


def test_the_plan_from_the_journal_is_within_15_percent_of_the_round_it_plans(pipeline) -> None:
    for number in (1, 2):
        assert pipeline.run_round(number, num_prompts=6).success
    journal = journal_path(pipeline.store.local_dir("journal"))
    pool = pipeline.read("filtered_tasks", 2)
    [estimate] = estimate_rounds(pool, 3, 1, 6, journal, 8)
    assert estimate.bases() == {BASIS_JOURNAL}
    result = pipeline.run_round(3, num_prompts=6)
    assert result.success
    spent, estimated_in_metadata = _spent(result)
    assert spent > 0 and estimated_in_metadata > 0
    assert abs(estimate.cost_usd(PRICE) - spent) <= 0.15 * spent, (estimate.cost_usd(PRICE),
                                                                   spent)


def test_sipipeline_plan_prints_rounds_totals_basis_and_budget(pipeline, capsys,
                                                               monkeypatch) -> None:
    from sipipeline.cli import main

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("SIPIPELINE_BUDGET_USD", "5")
    storage = str(pipeline.storage)
    assert main(["plan", "--rounds", "2", "--num-prompts", "4", "--storage", storage]) == 0
    out = capsys.readouterr().out
    assert "from round 1" in out and "prompts' sizes and max_tokens" in out
    assert pipeline.run_round(1, num_prompts=4).success
    assert main(["plan", "--rounds", "2", "--num-prompts", "4", "--storage", storage]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "from round 2" in out and "journal's token usage" in out
    for key in ("round_002", "round_003"):
        assert any(line.startswith(key) and "round total" in line for line in lines)
        assert sum(line.startswith(key) for line in lines) == 4  # three steps and the total
    assert any(line.startswith("total") for line in lines)
    assert "budget $5.0000" in out and "this plan fits" in out
