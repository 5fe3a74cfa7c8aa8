"""The concurrent model client: journaled, retrying, accounted.

`ModelClient.complete()` is a synchronous facade over an asyncio client running on a private
event-loop thread. Requests go out concurrently with a bounded number in flight; several
samples of one prompt are asked for in one request (`n>1`). Every sample that arrives is
written at once to the journal (`journal.py`) under a key (`keys.py`) of endpoint, model, API
mode, prompt, sampling parameters, sampling seed and sample index, so a run that crashes or is
killed and is started again re-sends only what is missing. 429, 5xx, timeouts, connection
errors and malformed answers are retried with exponential backoff and full jitter, honouring
Retry-After; authentication and other client errors fail at once. Tokens are counted per
purpose, priced (`pricing.py`), and an optional budget stops the work before it would be
exceeded.

Clients sharing a journal (other processes too) lease each request before sending it, so no
request is in flight twice. SIGINT/SIGTERM during a wait stop the work promptly, keeping
every answer received.

The API key and any credentials in the endpoint URL live only in the transport's headers:
they are never stored in the journal, logged, put in an exception message or shown by `repr`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import random
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sipipeline.model.config import ModelClientConfig
from sipipeline.model.endpoint_facts import (
    RESPONSE_FORMAT,
    TOKEN_LIMIT_FIELD,
    UNSUPPORTED,
    EndpointFacts,
)
from sipipeline.model.interrupts import StoppedBySignalError, deliver_again, watch_signals
from sipipeline.model.jobs import Job, RunState, job_keys
from sipipeline.model.journal import Claim, ResponseJournal, new_lease_owner
from sipipeline.model.keys import prompt_key, sample_key
from sipipeline.model.pricing import Budget, cost_usd
from sipipeline.model.redaction import redact
from sipipeline.model.transports import (
    EndpointConnectionError,
    EndpointStatusError,
    EndpointTimeoutError,
    Transport,
    make_transport,
)
from sipipeline.model.types import (
    MAX_COMPLETION_TOKENS,
    Completion,
    CompletionRequest,
    ModelAccessError,
    Usage,
)
from sipipeline.model.wire import (
    MalformedResponseError,
    ParsedResponse,
    build_body,
    parse_choices,
    parse_retry_after,
    rejects_response_format,
    split_tokens,
    wants_max_completion_tokens,
)

MALFORMED = "malformed response from the endpoint"

# Leases on request keys: how long one lasts unless renewed, how often the owner renews its
# leases, and how often a client waiting for another client's answers looks again.
LEASE_TTL_S = 60.0
LEASE_RENEW_S = 15.0
LEASE_POLL_S = 0.25

# The main thread waits for the loop thread in slices of this length, so a signal is noticed
# between them; after a signal the work gets this long to write the journal and stop.
WAIT_SLICE_S = 0.1
STOP_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 10.0


class _AbortedError(Exception):
    pass


class ModelClient:
    """Send completion requests concurrently; journal, retry and account for them."""

    def __init__(self, config: ModelClientConfig) -> None:
        self.config = config
        self.model_name = config.model
        self.journal = ResponseJournal(config.journal_path, config.journal_synchronous)
        self._facts = EndpointFacts(config.journal_path)
        # A field learnt from this endpoint's 400 answer (by any client on this journal) wins.
        self.token_limit_field = (self._facts.get(config.endpoint_id, config.model,
                                                  TOKEN_LIMIT_FIELD)
                                  or config.token_limit_field)
        # Structured output is asked for until the endpoint says it does not support it; then
        # requests go without `response_format` and answers are read by the text parsers.
        self.response_format_supported = self._facts.get(
            config.endpoint_id, config.model, RESPONSE_FORMAT) != UNSUPPORTED
        self._usage: dict[str, Usage] = defaultdict(Usage)
        self._budget = Budget(config.budget_usd, config.price)
        self._unsaved_samples: list[tuple] = []
        self._unsaved_calls: list[tuple] = []
        self._flush_scheduled = False
        self._journal_error: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="sipipeline-llm-loop")
        self._thread.start()
        self._transport: Transport = self._run(self._make_transport())
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

    def usage(self, purpose: str | None = None) -> Usage:
        """What this client used for `purpose` (a purpose never seen: zeros), or in total."""
        if purpose is not None:
            return replace(self._usage.get(purpose) or Usage())
        return sum(self._usage.values(), Usage())

    def usage_by_purpose(self) -> dict[str, Usage]:
        """Usage of every purpose seen, by purpose name."""
        return {name: replace(usage) for name, usage in sorted(self._usage.items())}

    @property
    def transport_name(self) -> str:
        return self._transport.name

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            future = asyncio.run_coroutine_threadsafe(self._transport.close(), self._loop)
            with contextlib.suppress(concurrent.futures.TimeoutError):
                future.result(timeout=CLOSE_TIMEOUT_S)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
            self.journal.close()
            self._facts.close()

    def __enter__(self) -> ModelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- internals
    def _run(self, coro: Any) -> Any:
        """Run `coro` on the loop thread and wait for it, never deaf to SIGINT/SIGTERM.

        The wait wakes up regularly; when a signal arrives (or its handler raises) the work is
        cancelled - requests in flight are dropped, answers received are journaled, leases
        released - before the interruption is passed on.
        """
        started, finished = threading.Event(), threading.Event()

        async def guarded() -> Any:
            started.set()
            try:
                return await coro
            finally:
                finished.set()

        future = asyncio.run_coroutine_threadsafe(guarded(), self._loop)
        with watch_signals() as watch:
            try:
                while True:
                    try:
                        return future.result(timeout=WAIT_SLICE_S)
                    except concurrent.futures.TimeoutError:
                        watch.check()
            except BaseException as interruption:
                future.cancel()
                if started.is_set():
                    finished.wait(STOP_TIMEOUT_S)
                if not isinstance(interruption, StoppedBySignalError):
                    raise
                stop = interruption
        if stop.default_action:
            deliver_again(stop)
        raise ModelAccessError(
            f"stopped by {stop}: requests in flight were dropped, every answer received is "
            "journaled; run again to continue") from None

    async def _make_transport(self) -> Transport:
        """Built on the loop thread: HTTP sessions bind to the loop that creates them."""
        return make_transport(self.config)

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
        jobs: list[Job] = []
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
                    usage.journal_hits += 1
            samples[digest] = row
            for start in range(0, len(missing), cfg.max_n_per_request):
                jobs.append(Job(request, digest, missing[start:start + cfg.max_n_per_request]))
        if jobs:
            state = RunState(new_lease_owner())
            try:
                await self._run_jobs(state, jobs, samples, purpose)
            finally:
                self._flush_journal()
                self._end_leases(state.owner)
            if self._journal_error is not None:
                error, self._journal_error = self._journal_error, None
                raise ModelAccessError(
                    f"could not write the response journal {self.journal.path}: "
                    f"{type(error).__name__}: {error}")
            if state.error is not None:
                raise state.error
        return [samples[d][:r.n] for d, r in zip(digests, requests, strict=True)]  # type: ignore[misc]

    async def _run_jobs(self, state: RunState, jobs: list[Job],
                        samples: dict[str, list[Completion | None]], purpose: str) -> None:
        """Lease the jobs' samples, send what is ours, wait for what others are sending."""
        self._sort_claimed(state, jobs, samples, purpose)
        renewer = asyncio.ensure_future(self._renew_leases(state.owner))
        watcher = asyncio.ensure_future(self._watch_waiting(state, samples, purpose))
        try:
            workers = min(self.config.max_in_flight, len(jobs))
            await asyncio.gather(*(self._worker(state, samples, purpose)
                                   for _ in range(workers)))
        finally:
            renewer.cancel()
            watcher.cancel()

    def _sort_claimed(self, state: RunState, jobs: list[Job],
                      samples: dict[str, list[Completion | None]], purpose: str) -> None:
        """Claim the jobs' samples: fill in journaled ones, queue leased jobs, park the rest."""
        claims = self.journal.claim([job_keys(job) for job in jobs], state.owner, LEASE_TTL_S)
        waiting = []
        for job, claim in zip(jobs, claims, strict=True):
            self._take_journaled(job, claim, samples[job.prompt_digest], purpose)
            if not job.sample_indices:
                continue
            if claim.leased:
                state.ready.append(job)
            else:
                waiting.append(job)
        state.waiting = waiting

    def _take_journaled(self, job: Job, claim: Claim, row: list[Completion | None],
                        purpose: str) -> None:
        """Fill in samples another client journaled meanwhile; drop them from the job."""
        if not claim.journaled:
            return
        left = []
        for index in job.sample_indices:
            key = sample_key(job.prompt_digest, index)
            hit = claim.journaled.get(key)
            if hit is None:
                left.append(index)
                continue
            row[index] = Completion(hit[0], hit[1], key, index, hit[2], hit[3], True)
            self._usage[purpose].journal_hits += 1
        job.sample_indices = left

    async def _watch_waiting(self, state: RunState,
                             samples: dict[str, list[Completion | None]], purpose: str) -> None:
        """Until no job waits: look again at the leases others hold on our samples."""
        try:
            while state.waiting and state.error is None:
                await asyncio.sleep(LEASE_POLL_S)
                if state.error is None:
                    self._sort_claimed(state, state.waiting, samples, purpose)
                await state.notify()
        finally:
            state.waiting = []
            await state.notify()

    async def _renew_leases(self, owner: str) -> None:
        while True:
            await asyncio.sleep(LEASE_RENEW_S)
            with contextlib.suppress(sqlite3.Error):  # a lease not renewed merely expires
                self.journal.renew(owner, LEASE_TTL_S)

    def _end_leases(self, owner: str) -> None:
        """Release what this call still leases (answers journaled already ended theirs)."""
        with contextlib.suppress(sqlite3.Error):  # e.g. a full disk: the leases then expire
            self.journal.release(owner)

    async def _worker(self, state: RunState, samples: dict[str, list[Completion | None]],
                      purpose: str) -> None:
        while state.error is None:
            job = state.next_job()
            if job is None:
                if not state.waiting:
                    return
                async with state.changed:
                    await state.changed.wait()
                continue
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
                    f"{redact(str(error), *self.config.secrets())}"))
                return

    async def _run_job(self, state: RunState, job: Job, row: list[Completion | None],
                       purpose: str) -> None:
        cfg = self.config
        request = job.request
        usage = self._usage[purpose]
        pending = list(job.sample_indices)
        attempt = 0
        while pending:
            if state.error is not None or self._journal_error is not None:
                raise _AbortedError()
            reservation = self._budget.reserve(request, len(pending))
            wait = state.pause_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            token_field = self.token_limit_field
            with_format = bool(request.response_format) and self.response_format_supported
            sent = request if with_format else replace(request, response_format="")
            try:
                response = await self._send(sent, len(pending), job, pending[0], token_field)
                parsed = parse_choices(response, api=cfg.api, limit=len(pending),
                                       extra_stops=request.params.stop[cfg.max_stop_sequences:])
            except EndpointStatusError as error:
                self._budget.release(reservation)
                status = error.status
                if (token_field != MAX_COMPLETION_TOKENS
                        and wants_max_completion_tokens(status, error.message)):
                    self._learn_token_limit_field(MAX_COMPLETION_TOKENS)
                    continue  # not an attempt: the same request in the form the endpoint wants
                if with_format and rejects_response_format(status, error.message):
                    self._learn_response_format_unsupported()
                    continue  # not an attempt: the same request without structured output
                if status in (401, 403):
                    raise ModelAccessError(
                        f"the endpoint refused the credentials (HTTP {status}); check "
                        "OPENAI_API_KEY and the credentials in OPENAI_BASE_URL") from None
                retryable = status in (408, 409, 429) or status >= 500
                if not retryable:
                    raise ModelAccessError(
                        f"the endpoint rejected a request (HTTP {status}): "
                        f"{redact(error.message, *cfg.secrets())}") from None
                retry_after = parse_retry_after(error.headers)
                if retry_after is not None and retry_after > cfg.backoff_max_s:
                    raise ModelAccessError(
                        f"the endpoint answered HTTP {status} and asked to wait "
                        f"{_duration(retry_after)} (Retry-After) before trying again, longer "
                        f"than backoff_max_s ({_duration(cfg.backoff_max_s)}); stopping instead "
                        "of waiting. Received samples are journaled: run again later, or raise "
                        "backoff_max_s to wait that long") from None
                if status == 429 and retry_after is not None:
                    state.pause_until = max(state.pause_until, time.monotonic() + retry_after)
                attempt += 1
                said = redact(error.message, *cfg.secrets()).strip()
                await self._backoff(attempt, retry_after,
                                    f"HTTP {status}" + (f" ({said})" if said else ""), usage)
                continue
            except (EndpointTimeoutError, EndpointConnectionError,
                    MalformedResponseError) as error:
                self._budget.release(reservation)
                cause = ("timeout" if isinstance(error, EndpointTimeoutError)
                         else "connection error" if isinstance(error, EndpointConnectionError)
                         else f"{MALFORMED} ({error})")
                attempt += 1
                await self._backoff(attempt, None, cause, usage)
                continue
            except Exception as error:
                # A LocalRequestError or anything else raised here, before any answer: not the
                # endpoint's doing and no retry can help, so it fails at once as what it is.
                self._budget.release(reservation)
                raise ModelAccessError(
                    f"a local error stopped a request to {cfg.endpoint_id} before the endpoint "
                    f"answered ({type(error).__name__}: {redact(str(error), *cfg.secrets())}); "
                    "nothing was received for it") from None
            self._budget.release(reservation)
            received = self._accept(parsed, job, pending, row, purpose)
            pending = pending[received:]
            if parsed.problem is not None:
                # Unusable choices are not answers: the samples they stood for are asked again.
                attempt += 1
                await self._backoff(attempt, None, f"{MALFORMED} ({parsed.problem})", usage)

    async def _send(self, request: CompletionRequest, n: int, job: Job,
                    first_sample: int, token_field: str) -> Any:
        cfg = self.config
        seed = (int(sample_key(job.prompt_digest, first_sample)[:8], 16) if cfg.send_seed
                else None)
        path, body = build_body(request, model=cfg.model, api=cfg.api, n=n,
                                max_stop_sequences=cfg.max_stop_sequences, seed=seed,
                                token_field=token_field)
        return await self._transport.post(path, body)

    def _learn_response_format_unsupported(self) -> None:
        """Send no `response_format` from now on, and remember it for later clients."""
        if not self.response_format_supported:
            return
        self.response_format_supported = False
        with contextlib.suppress(sqlite3.Error):  # not remembered: the next client asks again
            self._facts.put(self.config.endpoint_id, self.config.model, RESPONSE_FORMAT,
                            UNSUPPORTED)

    def _learn_token_limit_field(self, field: str) -> None:
        """Use `field` from now on, and remember it for later clients on this journal."""
        if self.token_limit_field == field:
            return
        self.token_limit_field = field
        with contextlib.suppress(sqlite3.Error):  # not remembered: the next client asks again
            self._facts.put(self.config.endpoint_id, self.config.model, TOKEN_LIMIT_FIELD,
                            field)

    def _accept(self, parsed: ParsedResponse, job: Job, pending: list[int],
                row: list[Completion | None], purpose: str) -> int:
        """Journal the samples of one response and fill them in; returns how many came.

        The call is accounted (and paid for) even when none of its choices was usable.
        """
        cfg = self.config
        call_cost = cost_usd(cfg.price, parsed.prompt_tokens, parsed.completion_tokens,
                             parsed.cached_tokens)
        shares = split_tokens(parsed.completion_tokens, parsed.texts)
        now = time.time()
        rows = []
        completions = []
        for position, (text, finish) in enumerate(
                zip(parsed.texts, parsed.finish_reasons, strict=True)):
            sample_index = pending[position]
            key = sample_key(job.prompt_digest, sample_index)
            rows.append((key, job.prompt_digest, sample_index, cfg.endpoint_id, cfg.model,
                         cfg.api, purpose, text, finish, parsed.prompt_tokens,
                         shares[position], parsed.response_id, now))
            completions.append(Completion(text, finish, key, sample_index,
                                          parsed.prompt_tokens, shares[position], False))
        self._unsaved_samples.extend(rows)
        self._unsaved_calls.append((parsed.response_id, purpose, cfg.endpoint_id, cfg.model,
                                    len(rows), parsed.prompt_tokens, parsed.completion_tokens,
                                    parsed.cached_tokens, call_cost, now))
        if not self._flush_scheduled:
            # Group commit: every response that arrives in this loop iteration goes into one
            # transaction, written before the loop waits for the network again.
            self._flush_scheduled = True
            self._loop.call_soon(self._flush_journal)
        for completion in completions:
            row[completion.sample_index] = completion
        usage = self._usage[purpose]
        usage.requests += 1
        usage.samples += len(completions)
        usage.prompt_tokens += parsed.prompt_tokens
        usage.completion_tokens += parsed.completion_tokens
        usage.cached_tokens += parsed.cached_tokens
        usage.cost_usd += call_cost
        self._budget.spend(call_cost)
        return len(completions)

    async def _backoff(self, attempt: int, retry_after: float | None, cause: str,
                       usage: Usage) -> None:
        cfg = self.config
        if attempt > cfg.max_retries:
            raise ModelAccessError(
                f"giving up after {cfg.max_retries} retries; last error: {cause} from "
                f"{cfg.endpoint_id} (model {cfg.model}); received samples are journaled",
                retryable=True) from None
        usage.retries += 1
        ceiling = min(cfg.backoff_max_s, cfg.backoff_base_s * 2 ** (attempt - 1))
        delay = random.uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, retry_after)
        await asyncio.sleep(delay)


def _duration(seconds: float) -> str:
    """A wait in words: '3600 s (1.0 h)'."""
    if seconds >= 3600:
        return f"{seconds:.0f} s ({seconds / 3600:.1f} h)"
    if seconds >= 120:
        return f"{seconds:.0f} s ({seconds / 60:.1f} min)"
    return f"{seconds:g} s"
