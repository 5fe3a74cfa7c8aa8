"""Run parameters of a round (Dagster run config), with the paper's values as defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import Field, ValidationError, field_validator, model_validator

from sipipeline.paths import DEFAULT_SEED_FILE
from sipipeline.reporting.formats import ALL, REGISTRY, resolve_formats


class RoundConfig(dg.Config):
    """Run config of a round step. Dagster's config schema has no ranges, so the pydantic
    constraints are checked when the config is built; a value out of range is a mistake no
    retry can fix, so it fails the step at once (`dg.Failure(allow_retries=False)`) instead of
    going through the step retry policy."""

    @model_validator(mode="wrap")
    @classmethod
    def _invalid_values_are_final(cls, data: Any, handler):
        try:
            config = handler(data)
            config.check_consistency()
        except ValueError as error:
            raise dg.Failure(description=f"invalid {cls.__name__}: {_problems(error)}",
                             allow_retries=False) from None
        return config

    def check_consistency(self) -> None:
        """Rules between fields; raise ValueError to refuse the config."""


def _problems(error: ValueError) -> str:
    if not isinstance(error, ValidationError):
        return str(error)
    return "; ".join(
        f"{'.'.join(str(part) for part in e['loc']) or 'config'}={e['input']!r}: {e['msg']}"
        if e["loc"] else e["msg"] for e in error.errors())


#: Ranges shared by the sampling parameters (those of the OpenAI API).
TEMPERATURE = {"ge": 0.0, "le": 2.0}
TOP_P = {"ge": 0.0, "le": 1.0}
PENALTY = {"ge": -2.0, "le": 2.0}


class SeedPoolConfig(RoundConfig):
    seed_file: str = Field(default=str(DEFAULT_SEED_FILE), min_length=1,
                           description="JSON-lines seed tasks used in round 1.")
    drop_judge_invalid: bool = Field(
        default=False,
        description="Leave out of this round's pool the previous round's tasks and instances "
                    "its quality_review judged invalid (needs that review; off by default, as "
                    "the paper's method keeps them).")


class GenerationConfig(RoundConfig):
    """Instruction generation and the novelty filter.

    `num_prompts` is small by default so a round finishes in minutes on the embedded model; the
    paper's scale is thousands of prompts per run against a large remote model.
    """

    num_prompts: int = Field(default=8, ge=1, description="Generation requests this round.")
    num_examples: int = Field(default=8, ge=1, description="In-context instructions per prompt.")
    num_machine_examples: int = Field(
        default=2, ge=0, description="How many in-context instructions come from machine tasks.")
    temperature: float = Field(default=0.7, **TEMPERATURE)
    top_p: float = Field(default=0.5, **TOP_P)
    presence_penalty: float = Field(default=2.0, **PENALTY)
    frequency_penalty: float = Field(default=0.0, **PENALTY)
    max_tokens: int = Field(default=1024, ge=1)
    similarity_threshold: float = Field(
        default=0.7, ge=0.0, le=1.0,
        description="Reject a candidate whose ROUGE-L to any pool task is above it (0 to 1).")
    random_seed: int = Field(
        default=0,
        description="Seeds in-context sampling and keys the response journal: change it to get "
                    "fresh samples instead of journaled ones.")
    yield_guard_requests: int = Field(
        default=16, ge=0,
        description="Yield guard: the first K generation requests are sent alone, and when "
                    "too few of their candidates are accepted the round sends no more (0 turns "
                    "the guard off). Only rounds with more than K requests can be cut short.")
    yield_guard_min_accepted_share: float = Field(
        default=0.05, ge=0.0, le=1.0,
        description="Yield guard: the share of the first K requests' candidate records that "
                    "must be accepted (heuristics and novelty passed) for the round to go on.")

    def check_consistency(self) -> None:
        if self.num_machine_examples > self.num_examples:
            raise ValueError(f"num_machine_examples ({self.num_machine_examples}) must not "
                             f"exceed num_examples ({self.num_examples})")


class ClassificationConfig(RoundConfig):
    temperature: float = Field(default=0.0, **TEMPERATURE)
    max_tokens: int = Field(default=3, ge=1)


class InstanceConfig(RoundConfig):
    temperature: float = Field(default=0.0, **TEMPERATURE)
    top_p: float = Field(default=0.0, **TOP_P)
    presence_penalty: float = Field(default=1.5, **PENALTY)
    max_tokens_input_first: int = Field(default=350, ge=1)
    max_tokens_output_first: int = Field(default=300, ge=1)


#: The config class of each round step that takes config.
ROUND_STEP_CONFIGS: dict[str, type[RoundConfig]] = {
    "seed_pool": SeedPoolConfig,
    "generated_instructions": GenerationConfig,
    "classification_labels": ClassificationConfig,
    "instances": InstanceConfig,
}


def validate_round_config(run_config: Mapping[str, Any] | None) -> None:
    """Check every round step's config in a run config at once (before a run starts, or in its
    first step); raises `dg.Failure(allow_retries=False)` naming each bad value."""
    ops = (run_config or {}).get("ops") or {}
    problems = []
    for step, config_class in ROUND_STEP_CONFIGS.items():
        values = (ops.get(step) or {}).get("config") or {}
        try:
            config_class(**values)
        except dg.Failure as failure:
            problems.append(f"ops.{step}.config: {failure.description}")
    if problems:
        raise dg.Failure(description="; ".join(problems), allow_retries=False)


class ExportConfig(dg.Config):
    formats: list[str] = Field(
        default=[ALL], description=f"Any of {', '.join(REGISTRY)}, or {ALL}.")
    include_seeds: bool = Field(default=False, description="Also export the 175 human seeds.")
    validation_fraction: float = Field(default=0.05, ge=0.0, lt=1.0)
    split_seed: int = Field(default=42, description="Seeds the split and template choice.")

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, formats: list[str]) -> list[str]:
        """Unknown names fail when the run is configured, not halfway through the export."""
        resolve_formats(formats)
        return formats
