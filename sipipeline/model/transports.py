"""HTTP transports: POST a JSON body to the endpoint, return the decoded answer.

Two interchangeable implementations: aiohttp speaking the wire format directly (the lean
default) and the official `openai` SDK's request path. Both raise the same three errors, so
the client's retry logic does not care which one runs. Anything else a transport raises is a
local error (the request could not be built or sent), never the endpoint's answer.

Authorization: the API key as a bearer token, or - when the endpoint URL carries credentials
(`http://user:password@host/v1`, a basic-auth proxy in front of a model server) - those
credentials as HTTP Basic auth instead: a request has one `Authorization` header, and the
credentials in the URL are the more specific instruction. The URL itself is used without them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from sipipeline.model.config import ModelClientConfig
from sipipeline.model.redaction import split_credentials
from sipipeline.model.wire import MalformedResponseError, error_body_message


class EndpointStatusError(Exception):
    """An HTTP error answer: status, headers (for Retry-After) and the server's message."""

    def __init__(self, status: int, headers: Mapping[str, str], message: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.headers = headers
        self.message = message


class EndpointTimeoutError(Exception):
    pass


class EndpointConnectionError(Exception):
    pass


class LocalRequestError(Exception):
    """The request could not be built or sent here (e.g. an unusable URL): not an answer."""


class Transport(Protocol):
    name: str

    async def post(self, path: str, body: dict[str, Any]) -> Any: ...

    async def close(self) -> None: ...


def make_transport(config: ModelClientConfig) -> Transport:
    """The configured transport; call on the event loop that will use it (sessions bind to it)."""
    choice = config.http_transport
    if choice == "auto":
        choice = "aiohttp" if aiohttp_available() else "openai"
    if choice == "aiohttp":
        return AiohttpTransport(config)
    return SdkTransport(config)


def is_loopback(base_url: str) -> bool:
    return urlsplit(base_url).hostname in ("127.0.0.1", "localhost", "::1")


def aiohttp_available() -> bool:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return False
    return True


def authorization(config: ModelClientConfig) -> tuple[str, str]:
    """(URL without credentials, `Authorization` header value) for the endpoint."""
    credentials = split_credentials(config.base_url)
    if credentials.present():
        token = base64.b64encode(
            f"{credentials.username}:{credentials.password}".encode()).decode("ascii")
        return credentials.url, f"Basic {token}"
    return config.base_url, f"Bearer {config.api_key or 'none'}"


def extra_openai_headers() -> dict[str, str]:
    """Organization and project headers, from the variables the official SDK reads."""
    headers = {}
    if os.environ.get("OPENAI_ORG_ID"):
        headers["OpenAI-Organization"] = os.environ["OPENAI_ORG_ID"]
    if os.environ.get("OPENAI_PROJECT_ID"):
        headers["OpenAI-Project"] = os.environ["OPENAI_PROJECT_ID"]
    return headers


class AiohttpTransport:
    """POST JSON to `<base_url><path>` with a bearer key, through one aiohttp session.

    Proxy variables are honoured except for a loopback endpoint (the embedded server); TLS
    uses certifi's CA bundle when it is installed, like the official SDK.
    """

    name = "aiohttp"

    def __init__(self, config: ModelClientConfig) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        base_url, auth_header = authorization(config)
        self._base_url = base_url.rstrip("/")
        loopback = is_loopback(base_url)
        ssl_context: ssl.SSLContext | bool = True
        if not loopback:
            try:
                import certifi

                ssl_context = ssl.create_default_context(cafile=certifi.where())
            except ImportError:
                pass
        headers = {"Authorization": auth_header,
                   "Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": "sipipeline", **extra_openai_headers()}
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ssl=ssl_context),
            timeout=aiohttp.ClientTimeout(total=config.timeout_s),
            headers=headers, trust_env=not loopback)

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            async with self._session.post(self._base_url + path,
                                          data=json.dumps(body, ensure_ascii=False)
                                          .encode("utf-8")) as response:
                payload = await response.read()
                if response.status >= 400:
                    raise EndpointStatusError(response.status, response.headers,
                                              error_body_message(payload))
        except asyncio.TimeoutError:
            raise EndpointTimeoutError() from None
        except self._aiohttp.InvalidURL:
            raise LocalRequestError("the endpoint URL is not usable") from None
        except self._aiohttp.ClientError as error:
            raise EndpointConnectionError(type(error).__name__) from None
        try:
            return json.loads(payload)
        except ValueError:
            raise MalformedResponseError("the answer is not valid JSON") from None

    async def close(self) -> None:
        await self._session.close()


class SdkTransport:
    """The official SDK's request path (auth, base URL, headers, error mapping), keeping the
    JSON answer as plain data: typed response objects would cost more CPU than the rest."""

    name = "openai"

    def __init__(self, config: ModelClientConfig) -> None:
        import openai  # only this transport needs the SDK (a slow import)

        self._openai = openai
        base_url, auth_header = authorization(config)
        self._client = openai.AsyncOpenAI(
            api_key=config.api_key or "none", base_url=base_url,
            timeout=config.timeout_s,
            max_retries=0,  # retries are ours: journal-aware, Retry-After-aware, bounded
            default_headers={"Authorization": auth_header},
            http_client=sdk_http_client(base_url))

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        openai = self._openai
        try:
            return await self._client.post(path, body=body, cast_to=object)
        except openai.APIStatusError as error:
            raise EndpointStatusError(error.status_code, error.response.headers,
                                      _status_message(error)) from None
        except openai.APITimeoutError:
            raise EndpointTimeoutError() from None
        except openai.APIConnectionError:
            raise EndpointConnectionError() from None
        except (openai.APIResponseValidationError, ValueError):
            raise MalformedResponseError("the answer is not valid JSON") from None

    async def close(self) -> None:
        await self._client.close()


def sdk_http_client(base_url: str) -> Any:
    """The HTTP client under the SDK: its aiohttp variant when installed (cheaper per request
    than its default httpx transport), proxies ignored for a loopback endpoint.
    None: the SDK's default."""
    import openai

    loopback = is_loopback(base_url)
    aiohttp_client = getattr(openai, "DefaultAioHttpClient", None)
    if aiohttp_client is not None and aiohttp_available():
        try:
            return aiohttp_client(trust_env=not loopback)
        except RuntimeError:
            pass
    if loopback:
        return openai.DefaultAsyncHttpxClient(trust_env=False)
    return None


def _status_message(error: Any) -> str:
    """The message of an SDK status error's body, else its class name."""
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
    return type(error).__name__
