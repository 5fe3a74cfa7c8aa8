"""Model access without Dagster: concurrent, journaled, retrying, accounted.

`ModelClient.complete()` is a synchronous facade over an asyncio OpenAI-API client running on
a private event-loop thread (aiohttp speaking the OpenAI wire format, or the official `openai`
SDK: `http_transport`). Requests go out concurrently with a bounded number in flight;
several samples of one prompt are asked for in one request (`n>1`). Every sample that
arrives is written at once to a SQLite journal keyed by a hash of endpoint, model, API mode,
prompt, sampling parameters, sampling seed and sample index, so a run that crashes or is killed
and is started again re-sends only what is missing. 429, 5xx, timeouts, connection errors and
malformed answers are retried with exponential backoff and full jitter, honouring Retry-After;
authentication and other client errors fail at once. Tokens are counted per purpose, priced
from a table, and an optional budget stops the work before it would be exceeded.

The API key lives only in the HTTP session's headers: it is never stored in the journal,
logged, put in an exception message or shown by `repr`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import math
import os
import random
import re
import sqlite3
import ssl
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import openai

API_COMPLETIONS = "completions"
API_CHAT = "chat"
API_MODES = (API_COMPLETIONS, API_CHAT)

# "aiohttp": POST the OpenAI wire format straight through aiohttp (about 0.3 ms of CPU per
# request); "openai": the official SDK's request path (about 1.3 ms: request building and
# header handling); "auto": aiohttp when installed, else the SDK.
HTTP_TRANSPORTS = ("auto", "aiohttp", "openai")

JOURNAL_SCHEMA_VERSION = 2

CHAT_SYSTEM_MESSAGE = (
    "You continue text. The user message is the beginning of a document. Reply with only the "
    "text that comes next, starting exactly where the document stops, in the same format. "
    "Do not repeat the document, do not comment, do not add a preamble."
)

USAGE_METRICS = (
    "requests", "samples", "journal_hits", "prompt_tokens", "completion_tokens",
    "cached_tokens", "retries", "cost_usd",
)


class ModelAccessError(RuntimeError):
    """The model could not be reached, refused us, or the budget would be exceeded.

    Its message states the cause and never contains the API key. `retryable` is False when
    running again unchanged cannot help (bad credentials, a rejected request, the budget), so
    a caller can fail without a retry storm; True after transient errors outlasted the retries.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class CompletionRequest:
    prompt: str
    params: SamplingParams
    n: int = 1
    sampling_seed: int = 0


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str
    request_key: str
    sample_index: int
    prompt_tokens: int
    completion_tokens: int
    from_journal: bool


@dataclass(frozen=True)
class TokenPrice:
    """US dollars per million tokens."""

    prompt: float
    completion: float
    cached_prompt: float | None = None  # defaults to the prompt price


# Public list prices (USD per 1M tokens) of a few models, as a starting point; override them
# with the resource's price settings when they change or for another provider.
DEFAULT_PRICES: dict[str, TokenPrice] = {
    "gpt-3.5-turbo-instruct": TokenPrice(1.50, 2.00),
    "davinci-002": TokenPrice(2.00, 2.00),
    "babbage-002": TokenPrice(0.40, 0.40),
    "gpt-4o-mini": TokenPrice(0.15, 0.60, 0.075),
    "gpt-4o": TokenPrice(2.50, 10.00, 1.25),
    "gpt-4.1-mini": TokenPrice(0.40, 1.60, 0.10),
    "gpt-4.1-nano": TokenPrice(0.10, 0.40, 0.025),
    "gpt-4.1": TokenPrice(2.00, 8.00, 0.50),
}


@dataclass
class ModelClientConfig:
    """Everything a `ModelClient` needs. `endpoint_id` names the endpoint in journal keys.

    `endpoint_id` defaults to `base_url`; the embedded server passes a stable id instead of its
    per-process port so its journal survives restarts.
    """

    base_url: str
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

    def __post_init__(self) -> None:
        if self.http_transport not in HTTP_TRANSPORTS:
            raise ModelAccessError(
                f"http_transport must be one of {HTTP_TRANSPORTS}, got {self.http_transport!r}")
        if self.api not in API_MODES:
            raise ModelAccessError(f"api must be one of {API_MODES}, got {self.api!r}")
        if self.max_in_flight < 1 or self.max_n_per_request < 1:
            raise ModelAccessError("max_in_flight and max_n_per_request must be at least 1")
        if not self.model:
            raise ModelAccessError("no model name configured")
        if not self.endpoint_id:
            self.endpoint_id = self.base_url.rstrip("/")
        if self.price is None:
            self.price = DEFAULT_PRICES.get(self.model)
        if self.budget_usd is not None and self.price is None:
            raise ModelAccessError(
                f"a budget is set but no token price is known for model {self.model!r}; "
                "set the prompt and completion prices per million tokens"
            )


# --------------------------------------------------------------------------- keys and costs
def prompt_key(endpoint_id: str, model: str, api: str, request: CompletionRequest) -> str:
    """Hash of everything that determines a prompt's answers, except the sample index."""
    digest = hashlib.sha256(_key_header(endpoint_id, model, api, request.params,
                                        request.sampling_seed))
    digest.update(b"\0")
    digest.update(request.prompt.encode("utf-8"))
    return digest.hexdigest()


@functools.lru_cache(maxsize=4096)
def _key_header(endpoint_id: str, model: str, api: str, params: SamplingParams,
                sampling_seed: int) -> bytes:
    """Canonical JSON of the key's fixed parts; the prompt follows it after a NUL byte."""
    return json.dumps({
        "v": JOURNAL_SCHEMA_VERSION,
        "endpoint": endpoint_id,
        "model": model,
        "api": api,
        "system": CHAT_SYSTEM_MESSAGE if api == API_CHAT else "",
        "params": asdict(params),
        "seed": sampling_seed,
    }, sort_keys=True, ensure_ascii=False).encode("utf-8")


def sample_key(prompt_digest: str, sample_index: int) -> str:
    """Journal key of one sample: the prompt key and the sample index, hashed."""
    return hashlib.sha256(f"{prompt_digest}:{sample_index}".encode()).hexdigest()


def cost_usd(price: TokenPrice | None, prompt_tokens: int, completion_tokens: int,
             cached_tokens: int = 0) -> float:
    """Cost of one call; 0 when the price is unknown (e.g. a local model)."""
    if price is None:
        return 0.0
    cached = min(cached_tokens, prompt_tokens)
    cached_price = price.prompt if price.cached_prompt is None else price.cached_prompt
    return ((prompt_tokens - cached) * price.prompt + cached * cached_price
            + completion_tokens * price.completion) / 1e6


def estimate_prompt_tokens(prompt: str) -> int:
    """A deliberately high token estimate (3 bytes per token) for budget reservations."""
    return math.ceil(len(prompt.encode("utf-8")) / 3) + 16


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def apply_stops(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` at the earliest of `stops`; True when it was cut."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


_SECRET_PATTERN = re.compile(r"(sk|key|api)[-_][A-Za-z0-9_\-*]{6,}", re.IGNORECASE)


def redact(text: str, secret: str) -> str:
    """Remove the key (and anything shaped like one) from a message."""
    if secret:
        text = text.replace(secret, "[redacted]")
    return _SECRET_PATTERN.sub("[redacted]", text)


# --------------------------------------------------------------------------- journal
class ResponseJournal:
    """SQLite journal of every sample received, written the moment it arrives.

    WAL mode: readers never block the writer, several processes may share one file, and a
    committed row survives the process being killed (`synchronous=FULL` also survives power
    loss, at the price of an fsync per response).
    """

    def __init__(self, path: str, synchronous: str = "NORMAL") -> None:
        if synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"journal synchronous mode must be NORMAL, FULL or EXTRA, "
                             f"not {synchronous!r}")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=60, check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute(
            """CREATE TABLE IF NOT EXISTS samples (
                request_key TEXT PRIMARY KEY,
                prompt_key TEXT NOT NULL,
                sample_index INTEGER NOT NULL,
                endpoint TEXT NOT NULL,
                model TEXT NOT NULL,
                api TEXT NOT NULL,
                purpose TEXT NOT NULL,
                text TEXT NOT NULL,
                finish_reason TEXT NOT NULL,
                prompt_tokens INTEGER NOT NULL,
                completion_tokens INTEGER NOT NULL,
                response_id TEXT NOT NULL,
                created_at REAL NOT NULL)"""
        )
        self._db.execute(
            """CREATE TABLE IF NOT EXISTS calls (
                response_id TEXT NOT NULL,
                purpose TEXT NOT NULL,
                endpoint TEXT NOT NULL,
                model TEXT NOT NULL,
                n_samples INTEGER NOT NULL,
                prompt_tokens INTEGER NOT NULL,
                completion_tokens INTEGER NOT NULL,
                cached_tokens INTEGER NOT NULL,
                cost_usd REAL NOT NULL,
                created_at REAL NOT NULL)"""
        )

    def lookup(self, keys: Sequence[str]) -> dict[str, tuple[str, str, int, int]]:
        """Journaled samples among `keys`: key -> (text, finish_reason, prompt, completion)."""
        found: dict[str, tuple[str, str, int, int]] = {}
        chunk = 500
        for start in range(0, len(keys), chunk):
            part = keys[start:start + chunk]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(
                "SELECT request_key, text, finish_reason, prompt_tokens, completion_tokens "
                f"FROM samples WHERE request_key IN ({marks})", part).fetchall()
            for key, text, finish, p_tokens, c_tokens in rows:
                found[key] = (text, finish, p_tokens, c_tokens)
        return found

    def record(self, samples: Sequence[tuple], calls: Sequence[tuple]) -> None:
        """Responses: their samples and accounting rows, in one transaction."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT OR IGNORE INTO samples VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", samples)
            self._db.executemany("INSERT INTO calls VALUES (?,?,?,?,?,?,?,?,?,?)", calls)

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]

    def close(self) -> None:
        self._db.close()


# --------------------------------------------------------------------------- the client
@dataclass
class _Job:
    """One HTTP request to make: some samples of one prompt."""

    request: CompletionRequest
    prompt_digest: str
    sample_indices: list[int]


class _AbortedError(Exception):
    pass


class _MalformedResponseError(ValueError):
    pass


class ModelClient:
    """Send completion requests concurrently; journal, retry and account for them."""

    def __init__(self, config: ModelClientConfig) -> None:
        self.config = config
        self.model_name = config.model
        self.journal = ResponseJournal(config.journal_path, config.journal_synchronous)
        self._usage: dict[str, dict[str, float]] = defaultdict(
            lambda: dict.fromkeys(USAGE_METRICS, 0.0))
        self._spent_usd = 0.0
        self._reserved_usd = 0.0
        self._unsaved_samples: list[tuple] = []
        self._unsaved_calls: list[tuple] = []
        self._flush_scheduled = False
        self._journal_error: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="sipipeline-llm-loop")
        self._thread.start()
        self._transport: _SdkTransport | _AiohttpTransport = self._run(self._make_transport())
        self._closed = False

    def __repr__(self) -> str:
        return (f"ModelClient(endpoint={self.config.endpoint_id!r}, model={self.model_name!r}, "
                f"api={self.config.api!r})")

    # ----------------------------------------------------------------- public API
    def complete(self, requests: Sequence[CompletionRequest], *, purpose: str
                 ) -> list[list[Completion]]:
        """One list of exactly n completions per request, in request order.

        Raises ModelAccessError when retries are exhausted, authentication fails or the budget
        would be exceeded; every sample received before that stays in the journal.
        """
        if self._closed:
            raise ModelAccessError("the model client is closed")
        return self._run(self._complete(list(requests), purpose))

    def usage(self, purpose: str | None = None) -> dict[str, float]:
        """Token and request accounting.

        With `purpose`: that purpose's metrics under plain names (requests, samples,
        journal_hits, prompt_tokens, completion_tokens, cached_tokens, retries, cost_usd).
        Without: `total.<metric>` plus `<purpose>.<metric>` for every purpose seen.
        """
        if purpose is not None:
            return dict(self._usage.get(purpose) or dict.fromkeys(USAGE_METRICS, 0.0))
        flat: dict[str, float] = {}
        totals = dict.fromkeys(USAGE_METRICS, 0.0)
        for name, metrics in sorted(self._usage.items()):
            for metric, value in metrics.items():
                flat[f"{name}.{metric}"] = value
                totals[metric] += value
        flat.update({f"total.{metric}": value for metric, value in totals.items()})
        return flat

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._run(self._transport.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
            self.journal.close()

    def __enter__(self) -> ModelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- internals
    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _make_transport(self) -> _SdkTransport | _AiohttpTransport:
        """Built on the loop thread: HTTP sessions bind to the loop that creates them."""
        choice = self.config.http_transport
        if choice == "auto":
            choice = "aiohttp" if _aiohttp_available() else "openai"
        if choice == "aiohttp":
            return _AiohttpTransport(self.config)
        return _SdkTransport(self.config)

    @property
    def transport_name(self) -> str:
        return self._transport.name

    def _flush_journal(self) -> None:
        """Write the responses received since the last flush (runs on the loop thread)."""
        self._flush_scheduled = False
        if not self._unsaved_samples and not self._unsaved_calls:
            return
        samples, calls = self._unsaved_samples, self._unsaved_calls
        self._unsaved_samples, self._unsaved_calls = [], []
        try:
            self.journal.record(samples, calls)
        except Exception as error:  # e.g. a full disk: stop sending, report it
            self._journal_error = error

    async def _complete(self, requests: list[CompletionRequest], purpose: str
                        ) -> list[list[Completion]]:
        cfg = self.config
        usage = self._usage[purpose]
        digests = [prompt_key(cfg.endpoint_id, cfg.model, cfg.api, r) for r in requests]
        # Identical prompts in one batch share their samples: nothing is asked for twice.
        wanted: dict[str, CompletionRequest] = {}
        for digest, request in zip(digests, requests, strict=True):
            if digest not in wanted or wanted[digest].n < request.n:
                wanted[digest] = request
        keys = {d: [sample_key(d, i) for i in range(r.n)] for d, r in wanted.items()}
        found = self.journal.lookup([k for row in keys.values() for k in row])
        samples: dict[str, list[Completion | None]] = {}
        jobs: list[_Job] = []
        for digest, request in wanted.items():
            row: list[Completion | None] = []
            missing: list[int] = []
            for sample_index, key in enumerate(keys[digest]):
                hit = found.get(key)
                if hit is None:
                    row.append(None)
                    missing.append(sample_index)
                else:
                    row.append(Completion(hit[0], hit[1], key, sample_index, hit[2], hit[3],
                                          True))
                    usage["journal_hits"] += 1
            samples[digest] = row
            for start in range(0, len(missing), cfg.max_n_per_request):
                jobs.append(_Job(request, digest, missing[start:start + cfg.max_n_per_request]))
        if jobs:
            state = _RunState(jobs)
            workers = min(cfg.max_in_flight, len(jobs))
            await asyncio.gather(*(self._worker(state, samples, purpose)
                                   for _ in range(workers)))
            self._flush_journal()
            if self._journal_error is not None:
                error, self._journal_error = self._journal_error, None
                raise ModelAccessError(
                    f"could not write the response journal {self.journal.path}: "
                    f"{type(error).__name__}: {error}")
            if state.error is not None:
                raise state.error
        return [samples[d][:r.n] for d, r in zip(digests, requests, strict=True)]  # type: ignore[misc]

    async def _worker(self, state: _RunState, samples: dict[str, list[Completion | None]],
                      purpose: str) -> None:
        while state.error is None:
            job = state.next_job()
            if job is None:
                return
            try:
                await self._run_job(state, job, samples[job.prompt_digest], purpose)
            except _AbortedError:
                return
            except ModelAccessError as error:
                state.fail(error)
                return
            except Exception as error:  # e.g. the journal's disk is full: stop cleanly
                state.fail(ModelAccessError(
                    f"model access stopped by {type(error).__name__}: "
                    f"{redact(str(error), self.config.api_key)}"))
                return

    async def _run_job(self, state: _RunState, job: _Job, row: list[Completion | None],
                       purpose: str) -> None:
        cfg = self.config
        request = job.request
        usage = self._usage[purpose]
        pending = list(job.sample_indices)
        attempt = 0
        while pending:
            if state.error is not None or self._journal_error is not None:
                raise _AbortedError()
            reservation = self._reserve(request, len(pending))
            wait = state.pause_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                response = await self._send(request, len(pending), job, pending[0])
            except EndpointStatusError as error:
                self._release(reservation)
                status = error.status
                if status in (401, 403):
                    raise ModelAccessError(
                        f"the endpoint refused the credentials (HTTP {status}); check "
                        "OPENAI_API_KEY and OPENAI_BASE_URL") from None
                retryable = status in (408, 409, 429) or status >= 500
                if not retryable:
                    raise ModelAccessError(
                        f"the endpoint rejected a request (HTTP {status}): "
                        f"{redact(error.message, cfg.api_key)}") from None
                retry_after = parse_retry_after(error.headers)
                if status == 429 and retry_after is not None:
                    state.pause_until = max(state.pause_until, time.monotonic() + retry_after)
                attempt += 1
                await self._backoff(attempt, retry_after, f"HTTP {status}", usage)
                continue
            except (EndpointTimeoutError, EndpointConnectionError, ValueError) as error:
                self._release(reservation)
                cause = ("timeout" if isinstance(error, EndpointTimeoutError)
                         else "connection error" if isinstance(error, EndpointConnectionError)
                         else "malformed response")
                attempt += 1
                await self._backoff(attempt, None, cause, usage)
                continue
            self._release(reservation)
            try:
                received = self._accept(response, request, job, pending, row, purpose)
            except (_MalformedResponseError, TypeError, ValueError, AttributeError):
                received = 0
            if received == 0:
                attempt += 1
                await self._backoff(attempt, None, "a response without usable choices", usage)
                continue
            pending = pending[received:]

    async def _send(self, request: CompletionRequest, n: int, job: _Job,
                    first_sample: int) -> Any:
        cfg = self.config
        params = request.params
        stops = list(params.stop[:cfg.max_stop_sequences])
        kwargs: dict[str, Any] = {
            "model": cfg.model,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "presence_penalty": params.presence_penalty,
            "frequency_penalty": params.frequency_penalty,
        }
        if n != 1:
            kwargs["n"] = n
        if stops:
            kwargs["stop"] = stops
        if cfg.send_seed:
            kwargs["seed"] = int(sample_key(job.prompt_digest, first_sample)[:8], 16)
        if cfg.api == API_CHAT:
            kwargs["messages"] = [{"role": "system", "content": CHAT_SYSTEM_MESSAGE},
                                  {"role": "user", "content": request.prompt}]
            return await self._transport.post("/chat/completions", kwargs)
        kwargs["prompt"] = request.prompt
        return await self._transport.post("/completions", kwargs)

    def _accept(self, response: Any, request: CompletionRequest, job: _Job,
                pending: list[int], row: list[Completion | None], purpose: str) -> int:
        """Journal the samples of one response and fill them in; returns how many came."""
        cfg = self.config
        if not isinstance(response, dict):
            raise _MalformedResponseError("the answer is not a JSON object")
        choices = sorted((c for c in response.get("choices") or [] if isinstance(c, dict)),
                         key=lambda c: c.get("index") or 0)[:len(pending)]
        texts: list[str] = []
        finishes: list[str] = []
        extra_stops = request.params.stop[cfg.max_stop_sequences:]
        for choice in choices:
            if cfg.api == API_CHAT:
                text = (choice.get("message") or {}).get("content") or ""
            else:
                text = choice.get("text") or ""
            finish = choice.get("finish_reason") or "unknown"
            if extra_stops:
                text, was_cut = apply_stops(text, extra_stops)
                if was_cut:
                    finish = "stop"
            texts.append(str(text))
            finishes.append(str(finish))
        usage_data = response.get("usage") or {}
        prompt_tokens = int(usage_data.get("prompt_tokens") or 0)
        completion_tokens = int(usage_data.get("completion_tokens") or 0)
        details = usage_data.get("prompt_tokens_details") or {}
        cached_tokens = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
        call_cost = cost_usd(cfg.price, prompt_tokens, completion_tokens, cached_tokens)
        shares = _split_tokens(completion_tokens, texts)
        now = time.time()
        response_id = str(response.get("id") or "")
        rows = []
        completions = []
        for position, (text, finish) in enumerate(zip(texts, finishes, strict=True)):
            sample_index = pending[position]
            key = sample_key(job.prompt_digest, sample_index)
            rows.append((key, job.prompt_digest, sample_index, cfg.endpoint_id, cfg.model,
                         cfg.api, purpose, text, finish, prompt_tokens, shares[position],
                         response_id, now))
            completions.append(Completion(text, finish, key, sample_index, prompt_tokens,
                                          shares[position], False))
        self._unsaved_samples.extend(rows)
        self._unsaved_calls.append((response_id, purpose, cfg.endpoint_id, cfg.model,
                                    len(rows), prompt_tokens, completion_tokens, cached_tokens,
                                    call_cost, now))
        if not self._flush_scheduled:
            # Group commit: every response that arrives in this loop iteration goes into one
            # transaction, written before the loop waits for the network again.
            self._flush_scheduled = True
            self._loop.call_soon(self._flush_journal)
        for completion in completions:
            row[completion.sample_index] = completion
        usage = self._usage[purpose]
        usage["requests"] += 1
        usage["samples"] += len(completions)
        usage["prompt_tokens"] += prompt_tokens
        usage["completion_tokens"] += completion_tokens
        usage["cached_tokens"] += cached_tokens
        usage["cost_usd"] += call_cost
        self._spent_usd += call_cost
        return len(completions)

    def _reserve(self, request: CompletionRequest, n: int) -> float:
        """Reserve the worst-case cost of a request; abort when the budget would be exceeded."""
        cfg = self.config
        if cfg.budget_usd is None:
            return 0.0
        worst = cost_usd(cfg.price, estimate_prompt_tokens(request.prompt),
                         request.params.max_tokens * n)
        if self._spent_usd + self._reserved_usd + worst > cfg.budget_usd:
            raise ModelAccessError(
                f"stopping before the budget of ${cfg.budget_usd:.4f} would be exceeded "
                f"(spent ${self._spent_usd:.4f}, in flight ${self._reserved_usd:.4f}, next "
                f"request up to ${worst:.4f}); everything received is journaled, raise "
                "budget_usd and run again to continue")
        self._reserved_usd += worst
        return worst

    def _release(self, reservation: float) -> None:
        self._reserved_usd -= reservation

    async def _backoff(self, attempt: int, retry_after: float | None, cause: str,
                       usage: dict[str, float]) -> None:
        cfg = self.config
        if attempt > cfg.max_retries:
            raise ModelAccessError(
                f"giving up after {cfg.max_retries} retries; last error: {cause} from "
                f"{cfg.endpoint_id} (model {cfg.model}); received samples are journaled",
                retryable=True) from None
        usage["retries"] += 1
        ceiling = min(cfg.backoff_max_s, cfg.backoff_base_s * 2 ** (attempt - 1))
        delay = random.uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, retry_after)
        await asyncio.sleep(delay)


class _RunState:
    """Shared by the workers of one `complete()` call (all on the loop thread)."""

    def __init__(self, jobs: list[_Job]) -> None:
        self._jobs: Iterator[_Job] = iter(jobs)
        self.error: ModelAccessError | None = None
        self.pause_until = 0.0

    def next_job(self) -> _Job | None:
        return next(self._jobs, None)

    def fail(self, error: ModelAccessError) -> None:
        if self.error is None:
            self.error = error


# --------------------------------------------------------------------------- transports
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


def _is_loopback(base_url: str) -> bool:
    return urlsplit(base_url).hostname in ("127.0.0.1", "localhost", "::1")


def _aiohttp_available() -> bool:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return False
    return True


def _error_message(payload: bytes) -> str:
    """The `error.message` of an OpenAI-style error body, else the start of the body."""
    try:
        data = json.loads(payload)
    except ValueError:
        return payload[:300].decode("utf-8", "replace")
    inner = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(inner, dict) and inner.get("message"):
        return str(inner["message"])[:300]
    return str(inner)[:300]


def _extra_openai_headers() -> dict[str, str]:
    """Organization and project headers, from the variables the official SDK reads."""
    headers = {}
    if os.environ.get("OPENAI_ORG_ID"):
        headers["OpenAI-Organization"] = os.environ["OPENAI_ORG_ID"]
    if os.environ.get("OPENAI_PROJECT_ID"):
        headers["OpenAI-Project"] = os.environ["OPENAI_PROJECT_ID"]
    return headers


class _AiohttpTransport:
    """POST JSON to `<base_url><path>` with a bearer key, through one aiohttp session.

    Proxy variables are honoured except for a loopback endpoint (the embedded server); TLS
    uses certifi's CA bundle when it is installed, like the official SDK.
    """

    name = "aiohttp"

    def __init__(self, config: ModelClientConfig) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self._base_url = config.base_url.rstrip("/")
        loopback = _is_loopback(config.base_url)
        ssl_context: ssl.SSLContext | bool = True
        if not loopback:
            try:
                import certifi

                ssl_context = ssl.create_default_context(cafile=certifi.where())
            except ImportError:
                pass
        headers = {"Authorization": f"Bearer {config.api_key or 'none'}",
                   "Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": "sipipeline", **_extra_openai_headers()}
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
                                              _error_message(payload))
        except asyncio.TimeoutError:
            raise EndpointTimeoutError() from None
        except self._aiohttp.ClientError as error:
            raise EndpointConnectionError(type(error).__name__) from None
        return json.loads(payload)

    async def close(self) -> None:
        await self._session.close()


class _SdkTransport:
    """The official SDK's request path (auth, base URL, headers, error mapping), keeping the
    JSON answer as plain data: typed response objects would cost more CPU than the rest."""

    name = "openai"

    def __init__(self, config: ModelClientConfig) -> None:
        self._client = openai.AsyncOpenAI(
            api_key=config.api_key or "none", base_url=config.base_url,
            timeout=config.timeout_s,
            max_retries=0,  # retries are ours: journal-aware, Retry-After-aware, bounded
            http_client=sdk_http_client(config.base_url))

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            return await self._client.post(path, body=body, cast_to=object)
        except openai.APIStatusError as error:
            raise EndpointStatusError(error.status_code, error.response.headers,
                                      _status_message(error)) from None
        except openai.APITimeoutError:
            raise EndpointTimeoutError() from None
        except openai.APIConnectionError:
            raise EndpointConnectionError() from None
        except openai.APIResponseValidationError:
            raise ValueError("malformed response") from None

    async def close(self) -> None:
        await self._client.close()


def sdk_http_client(base_url: str) -> Any:
    """The HTTP client under the SDK: its aiohttp variant when installed (about half the CPU
    per request of its default httpx transport), proxies ignored for a loopback endpoint.
    None: the SDK's default."""
    loopback = _is_loopback(base_url)
    aiohttp_client = getattr(openai, "DefaultAioHttpClient", None)
    if aiohttp_client is not None and _aiohttp_available():
        try:
            return aiohttp_client(trust_env=not loopback)
        except RuntimeError:
            pass
    if loopback:
        return openai.DefaultAsyncHttpxClient(trust_env=False)
    return None


def _status_message(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
    return type(error).__name__


def _split_tokens(total: int, texts: Sequence[str]) -> list[int]:
    """Share a response's completion tokens among its samples in proportion to text length."""
    if not texts:
        return []
    lengths = [len(t) + 1 for t in texts]
    whole = sum(lengths)
    shares = [total * length // whole for length in lengths]
    shares[0] += total - sum(shares)
    return shares
