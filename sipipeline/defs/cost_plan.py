"""What the next rounds are expected to cost: the model calls of a round, estimated step by step.

A round asks the model three times: generation (`num_prompts` prompts built from the pool),
classification and instances (one request per accepted new task each). The generation prompts
are built exactly as the round will build them; how many tasks a prompt yields and the tokens
of every step come from the journal's usage of earlier rounds when there is any, else from the
prompts' sizes and `max_tokens` (the most a prompt can yield and cost). Shared by
`sipipeline plan`, the round metadata and the next-round sensor's budget check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sipipeline.defs.config import (
    ClassificationConfig,
    GenerationConfig,
    InstanceConfig,
    SeedPoolConfig,
)
from sipipeline.defs.resources import ModelResource
from sipipeline.defs.storage import RoundStore
from sipipeline.method import prompts, rounds
from sipipeline.method.vocabulary import Origin
from sipipeline.model.plan import (
    BASIS_JOURNAL,
    PlannedCall,
    PurposeUsage,
    StepEstimate,
    estimate_step,
    journal_usage,
)
from sipipeline.model.pricing import TokenPrice

GENERATION = "generated_instructions"
CLASSIFICATION = "classification_labels"
INSTANCES = "instances"
JOURNAL_FILE = "llm_journal.sqlite"


@dataclass
class RoundEstimate:
    """The expected model use of one round, step by step."""

    number: int
    steps: list[StepEstimate] = field(default_factory=list)

    def requests(self) -> int:
        return sum(step.requests for step in self.steps)

    def prompt_tokens(self) -> int:
        return sum(step.prompt_tokens for step in self.steps)

    def completion_tokens(self) -> int:
        return sum(step.completion_tokens for step in self.steps)

    def cost_usd(self, price: TokenPrice | None) -> float:
        return sum(step.cost_usd(price) for step in self.steps)

    def batch_cost_usd(self, price: TokenPrice | None) -> float:
        return sum(step.batch_cost_usd(price) for step in self.steps)

    def bases(self) -> set[str]:
        return {step.basis for step in self.steps}


def journal_path(journal_dir: str | Path) -> Path:
    return Path(journal_dir) / JOURNAL_FILE


def tasks_per_generation_request(history: dict[str, PurposeUsage]) -> float:
    """New tasks a generation request yields: journaled ratio, else the most a list can hold."""
    made = history.get(GENERATION)
    classified = history.get(CLASSIFICATION)
    if made and classified and made.samples:
        return classified.samples / made.samples
    return float(prompts.NEW_ITEMS_PER_PROMPT)


def estimate_round(pool: pd.DataFrame, number: int, num_prompts: int,
                   history: dict[str, PurposeUsage], max_n_per_request: int,
                   prompts_per_request: int = 1,
                   generation: GenerationConfig | None = None,
                   classification: ClassificationConfig | None = None,
                   instance: InstanceConfig | None = None) -> RoundEstimate:
    """The expected requests and tokens of round `number` grown from `pool`."""
    generation = generation or GenerationConfig(num_prompts=num_prompts)
    classification = classification or ClassificationConfig()
    instance = instance or InstanceConfig()
    planned = rounds.plan_generation_prompts(
        pool, number, num_prompts, generation.num_examples, generation.num_machine_examples,
        generation.random_seed)
    estimate = RoundEstimate(number)
    estimate.steps.append(estimate_step(
        GENERATION, [PlannedCall(_size(p.prompt), 1, generation.max_tokens) for p in planned],
        max_n_per_request, history.get(GENERATION), prompts_per_request))
    tasks = round(num_prompts * tasks_per_generation_request(history))
    examples = prompts.FewShotExamples.from_seeds(
        pool[pool["origin"] == Origin.SEED].reset_index(drop=True))
    typical = _typical_instruction(pool)
    estimate.steps.append(estimate_step(
        CLASSIFICATION,
        [PlannedCall(_size(prompts.classification_prompt(examples, typical)), 1,
                     classification.max_tokens)] * tasks,
        max_n_per_request, history.get(CLASSIFICATION), prompts_per_request))
    longest = max(instance.max_tokens_input_first, instance.max_tokens_output_first)
    estimate.steps.append(estimate_step(
        INSTANCES,
        [PlannedCall(_size(rounds.instance_prompt(examples, typical, False)), 1, longest)]
        * tasks, max_n_per_request, history.get(INSTANCES), prompts_per_request))
    return estimate


def estimate_rounds(pool: pd.DataFrame, first: int, count: int, num_prompts: int,
                    journal: str | Path, max_n_per_request: int,
                    prompts_per_request: int = 1) -> list[RoundEstimate]:
    """Rounds `first` .. `first + count - 1`, each grown from `pool` (the pool as it is now)."""
    history = journal_usage(journal)
    return [estimate_round(pool, number, num_prompts, history, max_n_per_request,
                           prompts_per_request)
            for number in range(first, first + count)]


def used_journal(estimates: list[RoundEstimate]) -> bool:
    return any(BASIS_JOURNAL in estimate.bases() for estimate in estimates)


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _typical_instruction(pool: pd.DataFrame) -> str:
    """An instruction of median length, standing in for the tasks a round will generate."""
    texts = sorted(pool["instruction"].astype(str), key=len)
    return texts[len(texts) // 2] if texts else "Write a short story."


def budget_shortfall(llm: ModelResource, store: RoundStore, number: int) -> str | None:
    """Why round `number` (default run config) cannot be afforded, or None when it can or no
    budget is set: its projected cost against what the ledger has left."""
    from sipipeline.defs.partitions import round_key
    from sipipeline.method.seeds import load_seed_tasks
    from sipipeline.model.ledger import BUDGET_ENV, BudgetLedger

    budget = llm.effective_budget_usd()
    if budget is None:
        return None
    pool = (store.read("filtered_tasks", round_key(number - 1)) if number > 1
            else load_seed_tasks(SeedPoolConfig().seed_file))
    journal = journal_path(store.local_dir("journal"))
    [estimate] = estimate_rounds(pool, number, 1, GenerationConfig().num_prompts, journal,
                                 llm.requests_per_call(), llm.prompts_per_call())
    projected = estimate.cost_usd(llm.token_price())
    status = BudgetLedger(str(journal), budget).status()
    if projected <= status.left_usd():
        return None
    bases = " and ".join(sorted(estimate.bases()))
    return (f"The budget cannot cover {round_key(number)}: it is projected to cost "
            f"${projected:.4f} (from {bases}) and {status.describe()} leaves "
            f"${status.left_usd():.4f}. Raise {BUDGET_ENV} (or budget_usd) to continue.")
