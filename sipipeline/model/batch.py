"""Batch delivery: the same `complete()` as the online client, answered by the Batch API.

`BatchModelClient.complete()` turns the requests that the journal cannot answer into Batch
API files (one line per request, `custom_id` = journal key), uploads them, creates batches
(24 h window), polls them, and journals every answer of their output files; it returns the
same completions an online call would. It waits in-step up to `wait_s`, then raises
`BatchesPendingError`: the batches keep running, and a later call (a re-run, or the run the
batch sensor launches) picks them up from the manifest instead of sending anything again.

Resuming after a kill at any moment: a batch's manifest row says how far it got. A prepared
batch is uploaded; an upload or a `POST /batches` whose answer was lost is found again at the
endpoint (by file name, by batch metadata) before it is repeated; a running batch is polled;
an ended one is read again (answers already journaled are skipped, so none is paid or
counted twice). A request in a batch not yet reconciled is never sent again.

Failure shapes: a 404 for a file just uploaded is retried; a `failed` batch (e.g. the
enqueued-token limit) and a `cancelled` one stop the call with their errors, after their
partial output is journaled; an `expired` batch's missing requests, and requests an output
file omits, are sent again in a new batch; error-file lines are sent again until the retry
budget (`max_retries`) is spent, then reported as failed with their reason. Batch tokens
cost half the online price, in the accounting and the budget.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sipipeline.model.batch_api import BatchApi, BatchApiError
from sipipeline.model.batch_lines import (
    MAX_BYTES_PER_FILE,
    MAX_REQUESTS_PER_FILE,
    batch_errors,
    check_unique,
    file_content,
    half_price,
    parse_output,
    request_line,
    split_files,
)
from sipipeline.model.batch_manifest import (
    TERMINAL_STATES,
    BatchManifest,
    BatchRow,
    Outcome,
    Phase,
    RequestLine,
)
from sipipeline.model.client import ModelClient
from sipipeline.model.config import ModelClientConfig
from sipipeline.model.journal import new_lease_owner
from sipipeline.model.keys import prompt_key, sample_key
from sipipeline.model.pricing import Budget, cost_usd
from sipipeline.model.progress import ProgressCallback
from sipipeline.model.types import (
    API_CHAT,
    MAX_COMPLETION_TOKENS,
    Completion,
    CompletionRequest,
    ModelAccessError,
)
from sipipeline.model.wire import (
    CHAT_PATH,
    COMPLETIONS_PATH,
    MalformedResponseError,
    build_body,
    parse_choices,
    rejects_response_format,
    split_tokens,
    wants_max_completion_tokens,
)

DEFAULT_POLL_S = 30.0
#: How long a process's claim on moving a batch on lasts unless it renews it (each step does);
#: a process on this host that is gone loses its claims at once.
OWNER_TTL_S = 600.0
BATCH_METADATA_KEY = "sipipeline_batch"


class BatchesPendingError(ModelAccessError):
    """Batches are still running after `wait_s`: nothing is lost, run again (or let the batch
    sensor do it) once they are done. Not retryable in-step: waiting is the sensor's job."""

    def __init__(self, message: str, progress: dict[str, Any]) -> None:
        super().__init__(message, retryable=False)
        self.progress = progress


@dataclass
class _Job:
    """One request line to be answered: some samples of one prompt."""

    request: CompletionRequest
    prompt_digest: str
    sample_indices: list[int]

    @property
    def custom_id(self) -> str:
        return sample_key(self.prompt_digest, self.sample_indices[0])


@dataclass
class _CallState:
    """What one `complete()` call learned: requests it must not send again (failed or
    cancelled batches, spent retry budgets)."""

    stopped: dict[str, str] = field(default_factory=dict)  # custom_id -> why not sent again


class BatchModelClient(ModelClient):
    """A `ModelClient` whose requests go through the Batch API instead of one by one."""

    def __init__(self, config: ModelClientConfig, *, wait_s: float,
                 poll_s: float = DEFAULT_POLL_S, run_id: str = "", partition_key: str = "",
                 log: Callable[[str], None] | None = None,
                 on_pending: Callable[[], None] | None = None) -> None:
        """`log` receives progress lines; `on_pending` is called before BatchesPendingError."""
        super().__init__(config)
        self._on_pending = on_pending
        self._owner = new_lease_owner()
        self.wait_s = wait_s
        self.poll_s = poll_s
        self.run_id = run_id
        self.partition_key = partition_key
        self._log = log or (lambda message: None)
        self.manifest = BatchManifest(config.journal_path)
        self.api = BatchApi(config)
        self.batch_price = half_price(config.price)
        self._batch_budget = Budget(config.budget_usd, self.batch_price)
        self._reservations: dict[str, float] = {}
        self._online_usd: dict[str, float] = defaultdict(float)
        self._progress: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return (f"BatchModelClient(endpoint={self.config.endpoint_id!r}, "
                f"model={self.model_name!r}, api={self.config.api!r})")

    # ----------------------------------------------------------------- public API
    def complete(self, requests: Sequence[CompletionRequest], *, purpose: str,
                 progress: ProgressCallback | None = None) -> list[list[Completion]]:
        """One list of exactly n completions per request, in request order, via batches.

        `progress` is accepted for the online client's signature; batch progress (requests
        per batch state) goes to the batch log and the asset metadata instead.

        Raises BatchesPendingError when batches still run after `wait_s`, ModelAccessError
        when a batch failed or was cancelled or requests exhausted their retries.
        """
        if self._closed:
            raise ModelAccessError("the model client is closed")
        cfg = self.config
        requests = list(requests)
        digests = [prompt_key(cfg.endpoint_id, cfg.model, cfg.api, r) for r in requests]
        wanted: dict[str, CompletionRequest] = {}
        for digest, request in zip(digests, requests, strict=True):
            if digest not in wanted or wanted[digest].n < request.n:
                wanted[digest] = request
        keys = [sample_key(d, i) for d, r in wanted.items() for i in range(r.n)]
        before = set(self.journal.lookup(keys))
        self._usage[purpose].journal_hits += len(before)
        state = _CallState()
        deadline = time.monotonic() + self.wait_s
        while True:
            self._advance(purpose, state)
            remaining = self._remaining(wanted)
            live = self.manifest.live_custom_ids(list(remaining))
            sendable = {c: j for c, j in remaining.items()
                        if c not in live and c not in state.stopped}
            sendable = self._drop_exhausted(sendable, state)
            if sendable:
                self._submit(list(sendable.values()), purpose)
                self._advance(purpose, state)
                live = self.manifest.live_custom_ids(list(remaining))
            self._report(purpose, len(keys), remaining)
            if not live:
                break
            if time.monotonic() >= deadline:
                progress = self._progress[purpose]
                if self._on_pending is not None:
                    self._on_pending()
                raise BatchesPendingError(
                    f"batches pending: {progress['requests_done']} of "
                    f"{progress['requests_total']} samples answered, "
                    f"{len(live)} requests in live batches "
                    f"({_state_counts(progress['by_state'])}); nothing is lost - the batch "
                    "sensor (or running again) finishes the work once they are done",
                    dict(progress))
            time.sleep(min(self.poll_s, max(0.0, deadline - time.monotonic())))
        # Only this call's requests: a failed batch of another round is that round's news.
        stopped = {c: reason for c, reason in state.stopped.items() if c in remaining}
        if stopped:
            reasons = Counter(stopped.values())
            raise ModelAccessError(
                f"{len(stopped)} batch requests were not answered: "
                + "; ".join(f"{count} x {reason}" for reason, count in reasons.most_common(5))
                + ". Every answer received is journaled; run again to send the rest",
                retryable=False)
        found = self.journal.lookup(keys)
        results = []
        for digest, request in zip(digests, requests, strict=True):
            row = []
            for index in range(request.n):
                key = sample_key(digest, index)
                text, finish, p_tokens, c_tokens = found[key]
                row.append(Completion(text, finish, key, index, p_tokens, c_tokens,
                                      key in before))
            results.append(row)
        return results

    def online_equivalent_usd(self, purpose: str) -> float:
        """What the tokens paid at the batch price would have cost online."""
        return self._online_usd.get(purpose, 0.0)

    def batch_progress(self, purpose: str) -> dict[str, Any]:
        """Samples done / total and requests per batch state of the last call for `purpose`."""
        return dict(self._progress.get(purpose) or {})

    def close(self) -> None:
        if not self._closed:
            with contextlib.suppress(sqlite3.Error):  # unreleased claims merely lapse
                self.manifest.disown(self._owner)
            self.manifest.close()
        super().close()

    # ----------------------------------------------------------------- what to send
    def _remaining(self, wanted: dict[str, CompletionRequest]) -> dict[str, _Job]:
        """The request lines still needed, by custom_id (chunks of the missing samples)."""
        cfg = self.config
        all_keys = {d: [sample_key(d, i) for i in range(r.n)] for d, r in wanted.items()}
        found = self.journal.lookup([k for row in all_keys.values() for k in row])
        remaining: dict[str, _Job] = {}
        for digest, request in wanted.items():
            missing = [i for i, key in enumerate(all_keys[digest]) if key not in found]
            for start in range(0, len(missing), cfg.max_n_per_request):
                job = _Job(request, digest, missing[start:start + cfg.max_n_per_request])
                remaining[job.custom_id] = job
        return remaining

    def _drop_exhausted(self, sendable: dict[str, _Job], state: _CallState
                        ) -> dict[str, _Job]:
        """Requests whose error lines used up the retry budget are failed, not sent."""
        history = self.manifest.error_history(list(sendable))
        kept = {}
        for custom_id, job in sendable.items():
            errors = history.get(custom_id, [])
            if len(errors) > self.config.max_retries:
                state.stopped[custom_id] = f"failed after {len(errors)} attempts: {errors[-1]}"
            else:
                kept[custom_id] = job
        return kept

    def _submit(self, jobs: list[_Job], purpose: str) -> None:
        """Prepare batches for `jobs` (split at the file limits) in the manifest."""
        cfg = self.config
        lines = []
        for job in jobs:
            seed = (int(sample_key(job.prompt_digest, job.sample_indices[0])[:8], 16)
                    if cfg.send_seed else None)
            sent = job.request
            if sent.response_format and not self.response_format_supported:
                sent = replace(sent, response_format="")
            path, body = build_body(sent, model=cfg.model, api=cfg.api,
                                    n=len(job.sample_indices),
                                    max_stop_sequences=cfg.max_stop_sequences, seed=seed,
                                    token_field=self.token_limit_field)
            lines.append(RequestLine(job.custom_id, job.prompt_digest,
                                     tuple(job.sample_indices),
                                     request_line(job.custom_id, path, body),
                                     job.request.params.stop[cfg.max_stop_sequences:]))
        check_unique(lines)
        for group in split_files(lines, MAX_REQUESTS_PER_FILE, MAX_BYTES_PER_FILE):
            local_id = uuid.uuid4().hex
            reserved = 0.0
            try:
                for job in (j for j in jobs if j.custom_id in {g.custom_id for g in group}):
                    reserved += self._batch_budget.reserve(job.request, len(job.sample_indices))
            except ModelAccessError:
                self._batch_budget.release(reserved)
                raise
            added = self.manifest.add_batch(local_id, purpose, cfg.endpoint_id, cfg.model,
                                            group, self.run_id, self.partition_key,
                                            self._owner, OWNER_TTL_S)
            if not added:  # another process put them in a batch meanwhile
                self._batch_budget.release(reserved)
                continue
            self._reservations[local_id] = reserved
            self._log(f"{purpose}: prepared batch {local_id[:12]} with {len(added)} requests")

    # ----------------------------------------------------------------- batch phases
    def _advance(self, purpose: str, state: _CallState) -> None:
        """Move every live batch of `purpose` on as far as it goes without waiting."""
        for row in self.manifest.batches(live_only=True, purpose=purpose):
            if not self.manifest.own(row.local_id, self._owner, OWNER_TTL_S):
                continue  # another live process is moving this batch on
            if row.phase in (Phase.PREPARED, Phase.UPLOADING):
                self._upload(row)
            if row.phase in (Phase.UPLOADED, Phase.CREATING):
                self._create(row)
            if row.phase == Phase.SUBMITTED:
                batch = self._call(lambda row=row: self.api.retrieve(row.batch_id),
                                   f"retrieving batch {row.batch_id}")
                self._note_state(row, batch)
                if row.state in TERMINAL_STATES:
                    self._reconcile(row, batch, state)

    def _upload(self, row: BatchRow) -> None:
        filename = f"sipipeline-{row.local_id}.jsonl"
        if row.phase == Phase.UPLOADING:  # a restart: the file may be there already
            for existing in self._call(self.api.list_files, "listing files"):
                if existing.get("filename") == filename and existing.get("id"):
                    self._set(row, input_file_id=existing["id"], phase=Phase.UPLOADED)
                    return
        self._set(row, phase=Phase.UPLOADING)
        content = file_content(self.manifest.lines(row.local_id))
        uploaded = self._call(lambda: self.api.upload(filename, content),
                              f"uploading {filename}")
        self._set(row, input_file_id=str(uploaded["id"]), phase=Phase.UPLOADED)

    def _create(self, row: BatchRow) -> None:
        if row.phase == Phase.CREATING:  # a restart: POST /batches may have worked
            for batch in self._call(self.api.list_batches, "listing batches"):
                metadata = batch.get("metadata") or {}
                if (metadata.get(BATCH_METADATA_KEY) == row.local_id
                        or batch.get("input_file_id") == row.input_file_id):
                    self._set(row, batch_id=str(batch["id"]), state=str(batch.get("status")),
                              phase=Phase.SUBMITTED)
                    return
        self._set(row, phase=Phase.CREATING)
        endpoint = "/v1" + (CHAT_PATH if self.config.api == API_CHAT else COMPLETIONS_PATH)
        batch = self._call(
            lambda: self.api.create(row.input_file_id, endpoint,
                                    {BATCH_METADATA_KEY: row.local_id}),
            f"creating a batch from {row.input_file_id}", retry_not_found=True)
        self._set(row, batch_id=str(batch["id"]), state=str(batch.get("status")),
                  phase=Phase.SUBMITTED)
        self._log(f"{row.purpose}: created batch {batch['id']} "
                  f"({len(self.manifest.lines(row.local_id))} requests)")

    def _note_state(self, row: BatchRow, batch: dict[str, Any]) -> None:
        counts = {k: int(v) for k, v in (batch.get("request_counts") or {}).items()
                  if isinstance(v, int)}
        status = str(batch.get("status") or "")
        if status != row.state or counts != row.counts:
            self._log(f"{row.purpose}: batch {row.batch_id} {status} "
                      f"({counts.get('completed', 0)}/{counts.get('total', 0)} done, "
                      f"{counts.get('failed', 0)} failed)")
        self._set(row, state=status, counts=counts, errors=batch_errors(batch),
                  output_file_id=str(batch.get("output_file_id") or ""),
                  error_file_id=str(batch.get("error_file_id") or ""))

    def _reconcile(self, row: BatchRow, batch: dict[str, Any], state: _CallState) -> None:
        """Journal an ended batch's answers; account for every line by custom_id."""
        lines = {line.custom_id: line for line in self.manifest.lines(row.local_id)}
        outcomes: dict[str, tuple[Outcome, str]] = {}
        for file_id in (row.output_file_id, row.error_file_id):
            if not file_id:
                continue
            content = self._call(lambda f=file_id: self.api.content(f),
                                 f"downloading {file_id}")
            for output in parse_output(content):
                line = lines.get(output.custom_id)
                if line is None or outcomes.get(output.custom_id, (None,))[0] == Outcome.ANSWERED:
                    continue
                if output.body is None:
                    self._learn_from(output.status, output.error or "")
                    outcomes[output.custom_id] = (Outcome.ERROR, output.error or "error")
                else:
                    outcomes[output.custom_id] = self._journal_answer(row, line, output.body)
        errors = row.errors or batch_errors(batch)
        for custom_id in lines:
            answered = outcomes.get(custom_id, (None,))[0] == Outcome.ANSWERED
            if row.state in ("failed", "cancelled") and not answered:
                # Not run (OpenAI lists them as `batch_cancelled` error lines): honoured, not
                # sent again by this call and not counted against the retry budget.
                reason = f"batch {row.batch_id} {row.state}" + (f": {errors}" if errors else "")
                outcomes[custom_id] = (Outcome.NOT_RUN, reason)
                state.stopped[custom_id] = reason
            elif custom_id not in outcomes:
                outcomes[custom_id] = (Outcome.MISSING, f"no output line (batch {row.state})")
        self.manifest.set_outcomes(row.local_id, [(c, o, r) for c, (o, r) in outcomes.items()],
                                   phase=Phase.RECONCILED)
        row.phase = Phase.RECONCILED
        self._batch_budget.release(self._reservations.pop(row.local_id, 0.0))
        tally = Counter(o.value for o, _ in outcomes.values())
        message = f"{row.purpose}: batch {row.batch_id} {row.state}: {dict(tally)}"
        self._log(message + (f"; errors: {errors}" if errors else ""))

    def _journal_answer(self, row: BatchRow, line: RequestLine, body: dict[str, Any]
                        ) -> tuple[Outcome, str]:
        """Journal the usable samples of one output line, at the batch price."""
        cfg = self.config
        indices = list(line.sample_indices)
        keys = [sample_key(line.prompt_digest, i) for i in indices]
        if len(self.journal.lookup(keys)) == len(keys):
            return Outcome.ANSWERED, ""  # read before a restart: neither journaled nor paid twice
        try:
            parsed = parse_choices(body, api=cfg.api, limit=len(indices),
                                   extra_stops=line.extra_stops)
        except MalformedResponseError as error:
            return Outcome.ERROR, f"malformed answer ({error})"
        paid = cost_usd(self.batch_price, parsed.prompt_tokens, parsed.completion_tokens,
                        parsed.cached_tokens)
        online = cost_usd(cfg.price, parsed.prompt_tokens, parsed.completion_tokens,
                          parsed.cached_tokens)
        shares = split_tokens(parsed.completion_tokens, parsed.texts)
        now = time.time()
        samples = [(keys[pos], line.prompt_digest, indices[pos], cfg.endpoint_id, cfg.model,
                    cfg.api, row.purpose, text, finish, parsed.prompt_tokens, shares[pos],
                    parsed.response_id, now)
                   for pos, (text, finish) in enumerate(
                       zip(parsed.texts, parsed.finish_reasons, strict=True))]
        calls = [(parsed.response_id, row.purpose, cfg.endpoint_id, cfg.model, len(samples),
                  parsed.prompt_tokens, parsed.completion_tokens, parsed.cached_tokens, paid,
                  now)]
        self.journal.record(samples, calls)
        usage = self._usage[row.purpose]
        usage.requests += 1
        usage.samples += len(samples)
        usage.prompt_tokens += parsed.prompt_tokens
        usage.completion_tokens += parsed.completion_tokens
        usage.cached_tokens += parsed.cached_tokens
        usage.cost_usd += paid
        self._online_usd[row.purpose] += online
        self._batch_budget.spend(paid)
        if len(samples) < len(indices):
            return Outcome.ERROR, f"malformed answer ({parsed.problem or 'too few choices'})"
        return Outcome.ANSWERED, ""

    def _learn_from(self, status: int, message: str) -> None:
        """An error line refusing `response_format` or `max_tokens`: later lines (the retry
        of this one included) are written the way the endpoint wants, as online."""
        if (self.token_limit_field != MAX_COMPLETION_TOKENS
                and wants_max_completion_tokens(status, message)):
            self._learn_token_limit_field(MAX_COMPLETION_TOKENS)
        if self.response_format_supported and rejects_response_format(status, message):
            self._learn_response_format_unsupported()

    # ----------------------------------------------------------------- helpers
    def _set(self, row: BatchRow, **fields: Any) -> None:
        self.manifest.update(row.local_id, **fields)
        for name, value in fields.items():
            setattr(row, name, value)

    def _call(self, action: Callable[[], Any], what: str, *, retry_not_found: bool = False
              ) -> Any:
        """`action` with retries of transient errors (and of a 404 when asked)."""
        cfg = self.config
        attempt = 0
        while True:
            try:
                return action()
            except BatchApiError as error:
                transient = (error.status in (0, 408, 409, 429) or error.status >= 500
                             or (retry_not_found and error.status == 404))
                if error.status in (401, 403):
                    raise ModelAccessError(
                        f"the endpoint refused the credentials (HTTP {error.status}) while "
                        f"{what}") from None
                attempt += 1
                if not transient or attempt > cfg.max_retries:
                    raise ModelAccessError(f"{what} failed: {error}",
                                           retryable=transient) from None
                ceiling = min(cfg.backoff_max_s, cfg.backoff_base_s * 2 ** (attempt - 1))
                time.sleep(random.uniform(0, ceiling))

    def _report(self, purpose: str, total: int, remaining: dict[str, _Job]) -> None:
        """Samples done / total, and requests per batch state, for logs and metadata."""
        missing = sum(len(job.sample_indices) for job in remaining.values())
        by_state: Counter[str] = Counter()
        for row in self.manifest.batches(live_only=True, purpose=purpose):
            by_state[row.state or row.phase.value] += len(self.manifest.lines(row.local_id))
        progress = {"requests_total": total, "requests_done": total - missing,
                    "by_state": dict(by_state)}
        if progress != self._progress.get(purpose):
            self._log(f"{purpose}: {total - missing}/{total} samples answered"
                      + (f"; in batches: {_state_counts(by_state)}" if by_state else ""))
        self._progress[purpose] = progress


def refresh_batch(api: BatchApi, manifest: BatchManifest, row: BatchRow) -> None:
    """Record a batch's current state and files without reading them (the sensor and
    `sipipeline batches` do this; the next `complete()` downloads and reconciles)."""
    batch = api.retrieve(row.batch_id)
    counts = {k: int(v) for k, v in (batch.get("request_counts") or {}).items()
              if isinstance(v, int)}
    row.state = str(batch.get("status") or "")
    row.counts = counts
    manifest.update(row.local_id, state=row.state, counts=counts, errors=batch_errors(batch),
                    output_file_id=str(batch.get("output_file_id") or ""),
                    error_file_id=str(batch.get("error_file_id") or ""))


def _state_counts(by_state: dict[str, int]) -> str:
    return ", ".join(f"{count} {name}" for name, count in sorted(by_state.items())) or "none"
