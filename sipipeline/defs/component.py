"""`SelfInstructComponent`: the pipeline as a Dagster component, configured from `defs.yaml`.

A `create-dagster project` adds it with
`dg scaffold defs sipipeline.defs.component.SelfInstructComponent self_instruct`, which writes a
`defs.yaml` like:

    type: sipipeline.defs.component.SelfInstructComponent
    attributes:
      endpoint: https://api.openai.com/v1   # empty: the embedded local model
      llm_model: gpt-3.5-turbo-instruct
      round_size: 8                         # generation prompts per round
      similarity_threshold: 0.7
      storage: s3://my-bucket/self-instruct # empty: $DAGSTER_HOME/sipipeline
      sensor: false                         # true: next rounds start by themselves

The component builds exactly what `sipipeline.definitions` builds (`build_defs`): the round
assets, checks, job, next-round sensor and schedule, with these settings. The API key is never
part of the YAML: the component reads the variable named by `api_key_env`.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from sipipeline.defs import build_defs
from sipipeline.defs.resources import (
    API_KEY_ENV,
    EmbeddedModelResource,
    ModelResource,
    OpenAIEndpointResource,
)
from sipipeline.defs.round_defaults import round_run_config
from sipipeline.paths import storage_base

SCAFFOLD_ATTRIBUTES = {
    "endpoint": "{{ env.OPENAI_BASE_URL }}",
    "llm_model": "{{ env.SIPIPELINE_LLM_MODEL }}",
    "round_size": 8,
    "similarity_threshold": 0.7,
    "storage": "{{ env.SIPIPELINE_STORAGE }}",
    "sensor": False,
}


class SelfInstructScaffolder(dg.Scaffolder):
    """`dg scaffold defs`: a defs.yaml with every setting, read from the usual variables."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        dg.scaffold_component(request, SCAFFOLD_ATTRIBUTES)


@dg.scaffold_with(SelfInstructScaffolder)
class SelfInstructComponent(dg.Component, dg.Model, dg.Resolvable):
    """SELF-INSTRUCT bootstrap rounds as round-partitioned assets, with checks and automation."""

    endpoint: str | None = Field(
        default=None, description="OpenAI-compatible endpoint (e.g. https://api.openai.com/v1). "
        "Empty: the embedded local model, no key and no network.")
    # Not `model`: Dagster's Resolvable uses that name itself.
    llm_model: str | None = Field(
        default=None, description="Model name at the endpoint (the embedded engine runs its "
        "packaged model, or SIPIPELINE_MODEL_PATH).")
    api: str = Field(default="completions",
                     description="'completions' for base models, 'chat' for chat models.")
    api_key_env: str = Field(
        default=API_KEY_ENV, description="Environment variable holding the endpoint's API key "
        "(read at run time, never stored).")
    round_size: int = Field(default=8, ge=1,
                            description="Generation prompts per round (num_prompts).")
    similarity_threshold: float = Field(
        default=0.7, gt=0.0, le=1.0,
        description="Reject a candidate whose ROUGE-L to any pool task is above it.")
    storage: str | None = Field(
        default=None, description="Base of the Parquet store, reports and exports: a folder or "
        "an s3:// / gs:// URL. Empty: $SIPIPELINE_STORAGE, else $DAGSTER_HOME/sipipeline.")
    local_dir: str | None = Field(
        default=None, description="Local folder for the response journal (SQLite; never a "
        "URL). Empty: inside a local storage, else $DAGSTER_HOME/sipipeline-local.")
    sensor: bool = Field(
        default=False, description="Start the next-round sensor switched on, so rounds run "
        "unattended under dagster-daemon.")

    def llm_resource(self) -> ModelResource:
        """The model resource; the key as an `EnvVar` so it never appears in config or logs."""
        if not self.endpoint:
            return EmbeddedModelResource(api=self.api)
        fields: dict = {"api": self.api, "base_url": self.endpoint,
                        "api_key": dg.EnvVar(self.api_key_env)}
        if self.llm_model:
            fields["model"] = self.llm_model
        return OpenAIEndpointResource(**fields)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return build_defs(
            self.storage or storage_base(), self.llm_resource(),
            round_config=round_run_config(self.round_size, self.similarity_threshold),
            sensor_running=self.sensor, local_path=self.local_dir)
