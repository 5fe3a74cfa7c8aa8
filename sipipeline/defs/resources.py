"""The Dagster seam for model access: a model resource hands the assets a `ModelClient`.

One base, `ModelResource`, holds what every model shares (API mode, concurrency, retries,
prices, budget) and returns a client; each subclass says where the model runs:
`EmbeddedModelResource` (the local llama.cpp server: no key, no network) and
`OpenAIEndpointResource` (any OpenAI-compatible endpoint: OpenAI, vLLM, llama.cpp server,
Ollama, ...). The assets ask for the base class under the resource key `llm`, so either can be
bound. An endpoint's key is read from the environment through `dg.EnvVar`, so that run configs,
logs and the UI only ever show the variable's name. `llm_resource_from_env()` picks the class
from the environment and fills in only the variables that are set, so definitions load without
them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from sipipeline.method.vocabulary import PromptStyle
from sipipeline.model import embedded
from sipipeline.model.batch import BatchModelClient
from sipipeline.model.client import ModelClient
from sipipeline.model.config import ModelClientConfig
from sipipeline.model.keys import endpoint_id
from sipipeline.model.ledger import BUDGET_ENV, budget_from_env
from sipipeline.model.pricing import DEFAULT_PRICES, TokenPrice
from sipipeline.model.redaction import REDACTED, redact, split_credentials
from sipipeline.model.types import (
    API_CHAT,
    API_COMPLETIONS,
    MAX_TOKENS,
    TOKEN_LIMIT_FIELDS,
    ModelAccessError,
)

BASE_URL_ENV = "OPENAI_BASE_URL"
API_KEY_ENV = "OPENAI_API_KEY"
MODEL_ENV = "SIPIPELINE_LLM_MODEL"
API_MODE_ENV = "SIPIPELINE_LLM_API"
TOKEN_LIMIT_FIELD_ENV = "SIPIPELINE_TOKEN_LIMIT_FIELD"
STRUCTURED_OUTPUT_ENV = "SIPIPELINE_STRUCTURED_OUTPUT"
MODEL_PATH_ENV = "SIPIPELINE_MODEL_PATH"
PROMPTS_PER_REQUEST_ENV = "SIPIPELINE_PROMPTS_PER_REQUEST"
DELIVERY_ENV = "SIPIPELINE_LLM_DELIVERY"
BATCH_WAIT_ENV = "SIPIPELINE_LLM_BATCH_WAIT_S"
BATCH_POLL_ENV = "SIPIPELINE_LLM_BATCH_POLL_S"
DELIVERY_ONLINE = "online"
DELIVERY_BATCH = "batch"
#: A run tag set when a step ended with its batches still running (read by the batch sensor).
BATCHES_PENDING_TAG = "sipipeline/batches_pending"

DEFAULT_REMOTE_MODEL = "gpt-3.5-turbo-instruct"


class ModelResource(dg.ConfigurableResource):
    """How to call a model, wherever it runs: API mode, concurrency, retries, prices, budget.

    Subclasses supply `describe()` and `client_config()`; `get_client()` and the teardown that
    closes the clients are shared.
    """

    api: str = Field(
        default=API_COMPLETIONS,
        description="'completions' for base models (the paper's prompts as-is) or 'chat' for "
        "chat models (chat-native prompts per stage, answers read by the chat parser).")
    structured_output: bool = Field(
        default=False,
        description="Chat mode only: ask for each stage's answer as JSON (`response_format` "
        "with a JSON schema), for endpoints that support it; an answer that is not the JSON "
        "asked for is read by the text parser.")
    token_limit_field: str = Field(
        default=MAX_TOKENS,
        description="'max_tokens', or 'max_completion_tokens' for endpoints that require it "
        "(newer OpenAI models). Also learnt from the endpoint's 400 answer and remembered in "
        "the journal.")
    max_in_flight: int | None = Field(
        default=None,
        description="Requests in flight at once (default 32 for an endpoint, 2 x "
        "embedded_parallel for the embedded server).")
    timeout_s: float = Field(default=120.0, description="Per-request timeout in seconds.")
    max_retries: int = Field(default=6, description="Retries of 429/5xx/timeouts per request.")
    backoff_base_s: float = Field(default=0.5, description="First backoff ceiling in seconds.")
    backoff_max_s: float = Field(
        default=60.0, description="Largest backoff in seconds; a Retry-After asking for a "
        "longer wait fails the request at once.")
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
        default=None, description="Total USD this storage may spend on the model, across "
        "assets, rounds and concurrent runs (a ledger in the journal database); default "
        f"{BUDGET_ENV} when set. A round that would exceed it stops before sending.")
    adaptive_rate_limits: bool = Field(
        default=True, description="Pace requests by the endpoint's x-ratelimit-* headers and "
        "429s with one limiter per endpoint and process, the in-flight window adapting up to "
        "max_in_flight.")
    breaker_window_s: float = Field(
        default=60.0, description="Fail (not retry) once every answer for this many seconds "
        "was a 429 or 5xx.")
    http_transport: str = Field(
        default="auto",
        description="'aiohttp' (the lean default), 'openai' (the official SDK's request path) "
        "or 'auto' (aiohttp when installed).")
    journal_fsync: bool = Field(
        default=False,
        description="fsync the journal on every response (survives power loss, not only a "
        "killed process).")

    delivery: str = Field(
        default=DELIVERY_ONLINE,
        description=f"'{DELIVERY_ONLINE}' (one request at a time) or '{DELIVERY_BATCH}' (the "
        "Batch API: half the price, answers within 24 h); also set by "
        f"{DELIVERY_ENV}.")
    batch_wait_s: float = Field(
        default=600.0, description="In batch mode, how long a step waits for its batches; "
        "past it the step ends with 'batches pending' and batch_completion_sensor "
        "re-launches the round's remaining steps when they are done.")
    batch_poll_s: float = Field(default=30.0,
                                description="In batch mode, seconds between two polls.")

    _clients: list[ModelClient] = PrivateAttr(default_factory=list)
    _run_id: str = PrivateAttr(default="")
    _partition_key: str = PrivateAttr(default="")
    _instance: Any = PrivateAttr(default=None)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self._shown_fields().items())
        return f"{type(self).__name__}({fields})"

    __str__ = __repr__

    def describe(self) -> dict[str, str]:
        """Secret-free facts for metadata: endpoint, model, API mode."""
        raise NotImplementedError

    def client_config(self, journal_path: str) -> ModelClientConfig:
        """Check the settings and resolve the endpoint (starting a local one if needed)."""
        raise NotImplementedError

    def prompt_style(self) -> PromptStyle:
        """Which prompts and parsers the round uses with this model."""
        if self.api != API_CHAT:
            return PromptStyle.COMPLETION
        return PromptStyle.CHAT_JSON if self.structured_output else PromptStyle.CHAT

    def get_client(self, journal_path: str) -> ModelClient:
        """A client for this model writing to `journal_path` (through the Batch API in batch
        delivery); closed at teardown."""
        if self.delivery not in (DELIVERY_ONLINE, DELIVERY_BATCH):
            raise ModelAccessError(f"delivery must be '{DELIVERY_ONLINE}' or "
                                   f"'{DELIVERY_BATCH}', not {self.delivery!r}")
        config = self.client_config(journal_path)
        if self.delivery == DELIVERY_BATCH:
            client: ModelClient = BatchModelClient(
                config, wait_s=self.batch_wait_s, poll_s=self.batch_poll_s,
                run_id=self._run_id, partition_key=self._partition_key,
                log=dg.get_dagster_logger().info, on_pending=self._mark_batches_pending)
        else:
            client = ModelClient(config)
        self._clients.append(client)
        return client

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Remember the run, so batches name it and the batch sensor can re-launch it."""
        run = context.run
        if run is not None:
            self._run_id = run.run_id
            self._partition_key = run.tags.get("dagster/partition", "")
        self._instance = context.instance

    def _mark_batches_pending(self) -> None:
        if self._instance is not None and self._run_id:
            self._instance.add_run_tags(self._run_id, {BATCHES_PENDING_TAG: "true"})

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        while self._clients:
            self._clients.pop().close()

    def _shown_fields(self) -> dict[str, Any]:
        return self.model_dump()

    def _shared_settings(self) -> dict[str, Any]:
        """The `ModelClientConfig` arguments every model resource sets the same way."""
        if self.api not in (API_COMPLETIONS, API_CHAT):
            raise ModelAccessError(
                f"api must be '{API_COMPLETIONS}' or '{API_CHAT}', not {self.api!r}")
        if self.token_limit_field not in TOKEN_LIMIT_FIELDS:
            raise ModelAccessError(f"token_limit_field must be one of {TOKEN_LIMIT_FIELDS}, "
                                   f"not {self.token_limit_field!r}")
        return {"api": self.api, "token_limit_field": self.token_limit_field,
                "timeout_s": self.timeout_s, "max_retries": self.max_retries,
                "backoff_base_s": self.backoff_base_s, "backoff_max_s": self.backoff_max_s,
                "send_seed": self.send_seed, "budget_usd": self.effective_budget_usd(),
                "adaptive_rate_limits": self.adaptive_rate_limits,
                "breaker_window_s": self.breaker_window_s,
                "journal_synchronous": "FULL" if self.journal_fsync else "NORMAL",
                "http_transport": self.http_transport}

    def token_price(self) -> TokenPrice | None:
        """The price the clients will use (for plans: no server is started)."""
        raise NotImplementedError

    def requests_per_call(self) -> int:
        """Samples of one prompt asked for in one request (n) by the clients."""
        raise NotImplementedError

    def prompts_per_call(self) -> int:
        """Prompts one request carries (packing; completions API only)."""
        return 1

    def effective_budget_usd(self) -> float | None:
        """The budget field, else SIPIPELINE_BUDGET_USD, else None (no budget)."""
        return self.budget_usd if self.budget_usd is not None else budget_from_env()

    def _configured_price(self) -> TokenPrice | None:
        """The price given in the settings, if any."""
        if self.price_prompt_per_million is None and self.price_completion_per_million is None:
            return None
        return TokenPrice(self.price_prompt_per_million or 0.0,
                          self.price_completion_per_million or 0.0,
                          self.price_cached_prompt_per_million)


class EmbeddedModelResource(ModelResource):
    """The embedded llama.cpp server in this process: the packaged Gemma 3 270M or a GGUF."""

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

    def describe(self) -> dict[str, str]:
        model = Path(self.model_path).stem if self.model_path else embedded.DEFAULT_MODEL_ALIAS
        return {"endpoint": "embedded", "model": model, "api": self.api}

    def token_price(self) -> TokenPrice | None:
        return self._configured_price() or TokenPrice(0.0, 0.0)

    def requests_per_call(self) -> int:
        return 1

    def client_config(self, journal_path: str) -> ModelClientConfig:
        if self.delivery == DELIVERY_BATCH:
            raise ModelAccessError(
                f"the embedded model has no Batch API: use {DELIVERY_ENV}={DELIVERY_ONLINE}, or "
                f"an endpoint that implements it ({BASE_URL_ENV})")
        shared = self._shared_settings()
        # A small CPU model answers long completions slowly when every slot is busy.
        shared["timeout_s"] = max(self.timeout_s, 600.0)
        endpoint = embedded.ensure_server(embedded.EmbeddedSettings(
            model_path=self.model_path, n_parallel=self.embedded_parallel,
            threads=self.embedded_threads, context_per_slot=self.embedded_context))
        return ModelClientConfig(
            **shared, base_url=endpoint.base_url, model=endpoint.model,
            journal_path=journal_path, api_key="", endpoint_id=endpoint.endpoint_id,
            max_in_flight=self.max_in_flight or 2 * self.embedded_parallel,
            # llama.cpp's server counts one choice's tokens in `usage` when n > 1, and a
            # local request costs nothing to send: one sample per request keeps counts exact.
            max_n_per_request=1,
            price=self._configured_price() or TokenPrice(0.0, 0.0))


class OpenAIEndpointResource(ModelResource):
    """An OpenAI-compatible endpoint: OpenAI itself, vLLM, a llama.cpp server, Ollama, ..."""

    base_url: str = Field(
        description="The endpoint, e.g. https://api.openai.com/v1; give it as an environment "
        f"variable ({BASE_URL_ENV}). Credentials in it (http://user:password@host/v1) are sent "
        "as HTTP Basic auth instead of the API key, and kept out of logs and the journal.")
    api_key: str | None = Field(
        default=None,
        description=f"API key; give it as an environment variable ({API_KEY_ENV}), never as "
        "a literal. A local server without auth accepts any value, e.g. 'none'. Not needed "
        "(and not sent) when the URL carries credentials.")
    model: str | None = Field(
        default=None,
        description=f"Model name at the endpoint (default {DEFAULT_REMOTE_MODEL}).")
    max_n_per_request: int = Field(
        default=8, description="Samples asked for in one request (n); 1 for endpoints that "
        "ignore n.")
    prompts_per_request: int = Field(
        default=8, description="Prompts packed into one completions request (a list prompt; "
        "the journal still keys every prompt on its own); 1 for endpoints that reject lists. "
        "Chat requests always carry one.")

    def describe(self) -> dict[str, str]:
        return {"endpoint": endpoint_id(self.base_url),
                "model": self.model or DEFAULT_REMOTE_MODEL, "api": self.api}

    def token_price(self) -> TokenPrice | None:
        return self._configured_price() or DEFAULT_PRICES.get(self.model or DEFAULT_REMOTE_MODEL)

    def requests_per_call(self) -> int:
        return self.max_n_per_request

    def prompts_per_call(self) -> int:
        return self.prompts_per_request if self.api == API_COMPLETIONS else 1

    def client_config(self, journal_path: str) -> ModelClientConfig:
        shared = self._shared_settings()
        if not self.api_key and not split_credentials(self.base_url).present():
            raise ModelAccessError(
                f"an endpoint is configured ({BASE_URL_ENV} or base_url) but no API key: set "
                f"{API_KEY_ENV} (for a local server without authentication any value works, "
                f"e.g. {API_KEY_ENV}=none), or unset {BASE_URL_ENV} to use the embedded model")
        model = self.model or DEFAULT_REMOTE_MODEL
        return ModelClientConfig(
            **shared, base_url=self.base_url, model=model, journal_path=journal_path,
            api_key=self.api_key or "", max_in_flight=self.max_in_flight or 32,
            max_n_per_request=self.max_n_per_request,
            prompts_per_request=self.prompts_per_request,
            price=self._configured_price() or DEFAULT_PRICES.get(model))

    def _shown_fields(self) -> dict[str, Any]:
        shown = self.model_dump()
        if shown.get("api_key"):
            shown["api_key"] = REDACTED
        if isinstance(shown.get("base_url"), str):
            shown["base_url"] = redact(shown["base_url"])
        return shown


def llm_resource_from_env(**overrides: Any) -> ModelResource:
    """The `llm` resource for `Definitions`, chosen by the environment.

    OPENAI_BASE_URL set (or a `base_url` override): an `OpenAIEndpointResource`, with
    OPENAI_API_KEY, SIPIPELINE_LLM_MODEL, SIPIPELINE_LLM_API, SIPIPELINE_TOKEN_LIMIT_FIELD and
    SIPIPELINE_PROMPTS_PER_REQUEST and SIPIPELINE_LLM_DELIVERY as `dg.EnvVar` when set.
    SIPIPELINE_STRUCTURED_OUTPUT (true/false) sets `structured_output` for either resource;
    SIPIPELINE_LLM_BATCH_WAIT_S / _POLL_S (numbers) set `batch_wait_s` / `batch_poll_s`.
    Otherwise the `EmbeddedModelResource`, with SIPIPELINE_MODEL_PATH (a GGUF) and
    SIPIPELINE_LLM_API when set. Keyword overrides win.
    """
    if os.environ.get(BASE_URL_ENV) or overrides.get("base_url"):
        resource_type: type[ModelResource] = OpenAIEndpointResource
        variables = ((BASE_URL_ENV, "base_url"), (API_KEY_ENV, "api_key"),
                     (MODEL_ENV, "model"), (API_MODE_ENV, "api"),
                     (TOKEN_LIMIT_FIELD_ENV, "token_limit_field"), (DELIVERY_ENV, "delivery"))
    else:
        resource_type = EmbeddedModelResource
        variables = ((MODEL_PATH_ENV, "model_path"), (API_MODE_ENV, "api"),
                     (DELIVERY_ENV, "delivery"))
    fields: dict[str, Any] = {field_name: dg.EnvVar(env_name)
                              for env_name, field_name in variables if os.environ.get(env_name)}
    structured = os.environ.get(STRUCTURED_OUTPUT_ENV, "").strip().lower()
    if structured:
        fields["structured_output"] = structured in ("1", "true", "yes", "on")
    if resource_type is OpenAIEndpointResource and os.environ.get(PROMPTS_PER_REQUEST_ENV):
        fields["prompts_per_request"] = dg.EnvVar.int(PROMPTS_PER_REQUEST_ENV)
    for env_name, field_name in ((BATCH_WAIT_ENV, "batch_wait_s"),
                                 (BATCH_POLL_ENV, "batch_poll_s")):
        if os.environ.get(env_name):  # numbers, and no secret: read here
            try:
                fields[field_name] = float(os.environ[env_name])
            except ValueError:
                raise ModelAccessError(f"{env_name}={os.environ[env_name]!r} is not a number "
                                       "of seconds") from None
    fields.update(overrides)
    return resource_type(**fields)
