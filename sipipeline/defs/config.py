"""Run parameters of a round (Dagster run config), with the paper's values as defaults."""

from __future__ import annotations

import dagster as dg
from pydantic import Field, field_validator

from sipipeline.paths import DEFAULT_SEED_FILE
from sipipeline.reporting.formats import ALL, REGISTRY, resolve_formats


class SeedPoolConfig(dg.Config):
    seed_file: str = Field(default=str(DEFAULT_SEED_FILE),
                           description="JSON-lines seed tasks used in round 1.")


class GenerationConfig(dg.Config):
    """Instruction generation and the novelty filter.

    `num_prompts` is small by default so a round finishes in minutes on the embedded model; the
    paper's scale is thousands of prompts per run against a large remote model.
    """

    num_prompts: int = Field(default=8, ge=1, description="Generation requests this round.")
    num_examples: int = Field(default=8, ge=1, description="In-context instructions per prompt.")
    num_machine_examples: int = Field(
        default=2, ge=0, description="How many in-context instructions come from machine tasks.")
    temperature: float = 0.7
    top_p: float = 0.5
    presence_penalty: float = 2.0
    frequency_penalty: float = 0.0
    max_tokens: int = 1024
    similarity_threshold: float = Field(
        default=0.7, description="Reject a candidate whose ROUGE-L to any pool task is above it.")
    random_seed: int = Field(
        default=0,
        description="Seeds in-context sampling and keys the response journal: change it to get "
                    "fresh samples instead of journaled ones.")


class ClassificationConfig(dg.Config):
    temperature: float = 0.0
    max_tokens: int = 3


class InstanceConfig(dg.Config):
    temperature: float = 0.0
    top_p: float = 0.0
    presence_penalty: float = 1.5
    max_tokens_input_first: int = 350
    max_tokens_output_first: int = 300


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
