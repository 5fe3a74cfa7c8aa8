"""The Dagster seam for model access: `LLMResource` hands the assets a `ModelClient`.

With no `base_url` the embedded local model is used (no key, no network). With one, any
OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp server, Ollama, ...) is used, and the key
must be given too — read from the environment through `dg.EnvVar` so that run configs, logs
and the UI only ever show the variable's name. `llm_resource_from_env()` builds the resource
that way, and only for variables that are set, so definitions load without them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from sipipeline.model import embedded
from sipipeline.model.client import ModelClient
from sipipeline.model.config import ModelClientConfig
from sipipeline.model.pricing import DEFAULT_PRICES, TokenPrice
from sipipeline.model.types import API_CHAT, API_COMPLETIONS, ModelAccessError

BASE_URL_ENV = "OPENAI_BASE_URL"
API_KEY_ENV = "OPENAI_API_KEY"
MODEL_ENV = "SIPIPELINE_LLM_MODEL"
API_MODE_ENV = "SIPIPELINE_LLM_API"
MODEL_PATH_ENV = "SIPIPELINE_MODEL_PATH"

DEFAULT_REMOTE_MODEL = "gpt-3.5-turbo-instruct"


class LLMResource(dg.ConfigurableResource):
    """Which model to call and how: endpoint, concurrency, retries, prices and budget."""

    base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible endpoint, e.g. https://api.openai.com/v1. Empty: the "
        "embedded local model.")
    api_key: str | None = Field(
        default=None,
        description="API key; give it as an environment variable (OPENAI_API_KEY), never as "
        "a literal. A local server without auth accepts any value, e.g. 'none'.")
    model: str | None = Field(
        default=None,
        description="Model name at the endpoint. Empty: gpt-3.5-turbo-instruct for an "
        "endpoint, the packaged Gemma 3 270M (or model_path) for the embedded server.")
    api: str = Field(
        default=API_COMPLETIONS,
        description="'completions' for base models (the paper's prompts as-is) or 'chat' for "
        "chat models (the prompt is sent as a user message to continue).")
    model_path: str | None = Field(
        default=None, description="A GGUF file to run with the embedded engine instead of the "
        "packaged model.")
    embedded_parallel: int = Field(
        default=embedded.DEFAULT_N_PARALLEL,
        description="Parallel sequences of the embedded server.")
    embedded_context: int = Field(
        default=embedded.DEFAULT_CONTEXT_PER_SLOT,
        description="Context window (prompt + completion tokens) of each parallel sequence of "
        "the embedded server.")
    embedded_threads: int | None = Field(
        default=None, description="CPU threads of the embedded server (default: up to 4).")
    max_in_flight: int | None = Field(
        default=None,
        description="Requests in flight at once (default 32 for an endpoint, 2 x "
        "embedded_parallel for the embedded server).")
    max_n_per_request: int = Field(
        default=8, description="Samples asked for in one request (n) at an endpoint; 1 for "
        "endpoints that ignore n. The embedded server always gets one per request.")
    timeout_s: float = Field(default=120.0, description="Per-request timeout in seconds.")
    max_retries: int = Field(default=6, description="Retries of 429/5xx/timeouts per request.")
    backoff_base_s: float = Field(default=0.5, description="First backoff ceiling in seconds.")
    backoff_max_s: float = Field(default=60.0, description="Largest backoff in seconds.")
    send_seed: bool = Field(
        default=False,
        description="Send a seed derived from the journal key, for endpoints that honour it.")
    price_prompt_per_million: float | None = Field(
        default=None, description="USD per million prompt tokens (overrides the built-in "
        "table).")
    price_completion_per_million: float | None = Field(
        default=None, description="USD per million completion tokens.")
    price_cached_prompt_per_million: float | None = Field(
        default=None, description="USD per million cached prompt tokens.")
    budget_usd: float | None = Field(
        default=None, description="Stop an asset's requests before its cost would exceed this.")
    http_transport: str = Field(
        default="auto",
        description="'aiohttp' (lean, about 0.3 ms CPU per request), 'openai' (the official "
        "SDK's request path, about 1.3 ms) or 'auto' (aiohttp when installed).")
    journal_fsync: bool = Field(
        default=False,
        description="fsync the journal on every response (survives power loss, not only a "
        "killed process).")

    _clients: list[ModelClient] = PrivateAttr(default_factory=list)

    def __repr__(self) -> str:
        shown = self.model_dump()
        if shown.get("api_key"):
            shown["api_key"] = "[redacted]"
        fields = ", ".join(f"{name}={value!r}" for name, value in shown.items())
        return f"LLMResource({fields})"

    __str__ = __repr__

    def uses_embedded_model(self) -> bool:
        return not self.base_url

    def describe(self) -> dict[str, str]:
        """Key-free facts for metadata: endpoint, model, API mode."""
        if self.uses_embedded_model():
            model = (Path(self.model_path).stem if self.model_path
                     else embedded.DEFAULT_MODEL_ALIAS)
            return {"endpoint": "embedded", "model": model, "api": self.api}
        return {"endpoint": str(self.base_url), "model": self.model or DEFAULT_REMOTE_MODEL,
                "api": self.api}

    def client_config(self, journal_path: str) -> ModelClientConfig:
        """Check the settings and resolve the endpoint (starting the embedded one if needed)."""
        if self.api not in (API_COMPLETIONS, API_CHAT):
            raise ModelAccessError(
                f"api must be '{API_COMPLETIONS}' or '{API_CHAT}', not {self.api!r}")
        price = self._price()
        if self.uses_embedded_model():
            endpoint = embedded.ensure_server(embedded.EmbeddedSettings(
                model_path=self.model_path, n_parallel=self.embedded_parallel,
                threads=self.embedded_threads, context_per_slot=self.embedded_context))
            return ModelClientConfig(
                base_url=endpoint.base_url, model=endpoint.model, journal_path=journal_path,
                api_key="", api=self.api, endpoint_id=endpoint.endpoint_id,
                max_in_flight=self.max_in_flight or 2 * self.embedded_parallel,
                timeout_s=max(self.timeout_s, 600.0), max_retries=self.max_retries,
                backoff_base_s=self.backoff_base_s, backoff_max_s=self.backoff_max_s,
                # llama.cpp's server counts one choice's tokens in `usage` when n > 1, and a
                # local request costs nothing to send: one sample per request keeps counts exact.
                max_n_per_request=1, send_seed=self.send_seed,
                price=price or TokenPrice(0.0, 0.0), budget_usd=self.budget_usd,
                journal_synchronous="FULL" if self.journal_fsync else "NORMAL",
                http_transport=self.http_transport)
        if not self.api_key:
            raise ModelAccessError(
                f"an endpoint is configured ({BASE_URL_ENV} or base_url) but no API key: set "
                f"{API_KEY_ENV} (for a local server without authentication any value works, "
                f"e.g. {API_KEY_ENV}=none), or unset {BASE_URL_ENV} to use the embedded model")
        return ModelClientConfig(
            base_url=str(self.base_url), model=self.model or DEFAULT_REMOTE_MODEL,
            journal_path=journal_path, api_key=self.api_key, api=self.api,
            max_in_flight=self.max_in_flight or 32, timeout_s=self.timeout_s,
            max_retries=self.max_retries, backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s, max_n_per_request=self.max_n_per_request,
            send_seed=self.send_seed, price=price, budget_usd=self.budget_usd,
            journal_synchronous="FULL" if self.journal_fsync else "NORMAL",
            http_transport=self.http_transport)

    def get_client(self, journal_path: str) -> ModelClient:
        """A client for this endpoint writing to `journal_path`; closed at teardown."""
        client = ModelClient(self.client_config(journal_path))
        self._clients.append(client)
        return client

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        while self._clients:
            self._clients.pop().close()

    def _price(self) -> TokenPrice | None:
        if self.price_prompt_per_million is not None or \
                self.price_completion_per_million is not None:
            return TokenPrice(self.price_prompt_per_million or 0.0,
                              self.price_completion_per_million or 0.0,
                              self.price_cached_prompt_per_million)
        if self.uses_embedded_model():
            return None
        return DEFAULT_PRICES.get(self.model or DEFAULT_REMOTE_MODEL)


def llm_resource_from_env(**overrides: Any) -> LLMResource:
    """The resource for `Definitions`: env-configured fields as `dg.EnvVar`, only when set.

    OPENAI_BASE_URL and OPENAI_API_KEY choose an endpoint (unset: the embedded model);
    SIPIPELINE_LLM_MODEL, SIPIPELINE_LLM_API and SIPIPELINE_MODEL_PATH set the model, the API
    mode and a GGUF for the embedded engine. Keyword overrides win.
    """
    fields: dict[str, Any] = {}
    for env_name, field_name in ((BASE_URL_ENV, "base_url"), (API_KEY_ENV, "api_key"),
                                 (MODEL_ENV, "model"), (API_MODE_ENV, "api"),
                                 (MODEL_PATH_ENV, "model_path")):
        if os.environ.get(env_name):
            fields[field_name] = dg.EnvVar(env_name)
    fields.update(overrides)
    return LLMResource(**fields)
