"""The settings of one `ModelClient`, checked when they are made."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sipipeline.model.keys import endpoint_id
from sipipeline.model.pricing import DEFAULT_PRICES, TokenPrice
from sipipeline.model.redaction import redact, split_credentials
from sipipeline.model.types import (
    API_COMPLETIONS,
    API_MODES,
    MAX_TOKENS,
    TOKEN_LIMIT_FIELDS,
    ModelAccessError,
)

# "aiohttp": POST the OpenAI wire format straight through aiohttp; "openai": the official
# SDK's request path; "auto": aiohttp when installed, else the SDK.
HTTP_TRANSPORTS = ("auto", "aiohttp", "openai")


@dataclass
class ModelClientConfig:
    """Everything a `ModelClient` needs. `endpoint_id` names the endpoint in journal keys.

    `endpoint_id` defaults to one derived from `base_url`; the embedded server passes a stable
    id instead of its per-process port so its journal survives restarts.
    """

    base_url: str = field(repr=False)  # may carry credentials
    model: str
    journal_path: str
    api_key: str = field(default="", repr=False)
    api: str = API_COMPLETIONS
    endpoint_id: str = ""
    max_in_flight: int = 16
    timeout_s: float = 120.0
    max_retries: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 60.0
    max_n_per_request: int = 8
    max_stop_sequences: int = 4
    send_seed: bool = False
    price: TokenPrice | None = None
    budget_usd: float | None = None
    journal_synchronous: str = "NORMAL"
    http_transport: str = "auto"
    #: Where the token limit goes: `max_tokens`, or `max_completion_tokens` for endpoints that
    #: require it (also learnt from the endpoint's 400 answer, and remembered in the journal).
    token_limit_field: str = MAX_TOKENS

    def secrets(self) -> tuple[str, ...]:
        """What must never appear in a message: the key and any credentials in the URL.

        "none", the documented placeholder key for servers without authentication, is no
        secret (and redacting it would mangle messages).
        """
        key = "" if self.api_key == "none" else self.api_key
        return (key, *split_credentials(self.base_url).secrets())

    def __post_init__(self) -> None:
        if self.http_transport not in HTTP_TRANSPORTS:
            raise ModelAccessError(
                f"http_transport must be one of {HTTP_TRANSPORTS}, got {self.http_transport!r}")
        if self.token_limit_field not in TOKEN_LIMIT_FIELDS:
            raise ModelAccessError(f"token_limit_field must be one of {TOKEN_LIMIT_FIELDS}, "
                                   f"got {self.token_limit_field!r}")
        if self.api not in API_MODES:
            raise ModelAccessError(f"api must be one of {API_MODES}, got {self.api!r}")
        if self.max_in_flight < 1 or self.max_n_per_request < 1:
            raise ModelAccessError("max_in_flight and max_n_per_request must be at least 1")
        if not self.model:
            raise ModelAccessError("no model name configured")
        credentials = split_credentials(self.base_url)
        try:
            parts = urlsplit(credentials.url)
            _ = parts.port  # raises on a port out of range
        except ValueError as error:
            raise ModelAccessError(f"the endpoint URL is not usable: {error}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ModelAccessError(
                "the endpoint URL must start with http:// or https:// and name a host, e.g. "
                f"https://api.openai.com/v1; got {redact(credentials.url)!r}")
        if not self.endpoint_id:
            self.endpoint_id = endpoint_id(self.base_url)
        if self.price is None:
            self.price = DEFAULT_PRICES.get(self.model)
        if self.budget_usd is not None and self.price is None:
            raise ModelAccessError(
                f"a budget is set but no token price is known for model {self.model!r}; "
                "set the prompt and completion prices per million tokens"
            )
