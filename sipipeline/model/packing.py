"""Several prompts in one completions request, and the answer split back per prompt.

The completions API takes a list of prompts: the answer's choices are numbered prompt by
prompt (`index = prompt * n + sample`). A classification is a 3-token answer to a long prompt,
so packing a few per request cuts the requests (and the rate-limit budget they use) several
times over. The answer is split into one `ParsedResponse` per prompt, each with its share of
the usage (prompt tokens by prompt size, completion tokens by text length), so every prompt is
journaled and accounted under its own key as if it had been asked alone.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sipipeline.model.jobs import Job, RunState
from sipipeline.model.pricing import estimate_prompt_tokens
from sipipeline.model.transports import (
    EndpointConnectionError,
    EndpointStatusError,
    EndpointTimeoutError,
)
from sipipeline.model.types import Completion, ModelAccessError
from sipipeline.model.wire import (
    MalformedResponseError,
    ParsedResponse,
    build_body,
    parse_choices,
    parse_retry_after,
)


def take_pack(first: Job, ready: deque[Job], limit: int) -> list[Job]:
    """`first` and up to `limit - 1` queued jobs that can share its request (same sampling
    parameters and number of samples), taken out of `ready`."""
    pack = [first]
    if limit <= 1 or not first.packable:
        return pack
    kept: deque[Job] = deque()
    while ready and len(pack) < limit:
        job = ready.popleft()
        if (job.packable and job.request.params == first.request.params
                and len(job.sample_indices) == len(first.sample_indices)):
            pack.append(job)
        else:
            kept.append(job)
    ready.extendleft(reversed(kept))
    return pack


def split_packed(response: Any, *, api: str, samples_per_prompt: int,
                 prompt_sizes: Sequence[int], extra_stops: Sequence[str] = ()
                 ) -> list[ParsedResponse]:
    """One parsed answer per prompt of a packed request, usage shared out among them."""
    if not isinstance(response, dict):
        raise MalformedResponseError("the answer is not a JSON object")
    choices = response.get("choices")
    if not isinstance(choices, list):
        raise MalformedResponseError("`choices` is not a list")
    groups: list[list[dict]] = [[] for _ in prompt_sizes]
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        index = choice.get("index")
        if not isinstance(index, int) or not 0 <= index < len(groups) * samples_per_prompt:
            continue
        groups[index // samples_per_prompt].append(
            {**choice, "index": index % samples_per_prompt})
    parsed = [parse_choices({"id": response.get("id"), "choices": group}, api=api,
                            limit=samples_per_prompt, extra_stops=extra_stops)
              for group in groups]
    usage = response.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    prompt_shares = _shares(int(usage.get("prompt_tokens") or 0), prompt_sizes)
    cached_shares = _shares(int(details.get("cached_tokens") or 0)
                            if isinstance(details, dict) else 0, prompt_sizes)
    completion_shares = _shares(int(usage.get("completion_tokens") or 0),
                                [sum(len(t) + 1 for t in p.texts) for p in parsed])
    return [replace(p, prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached)
            for p, prompt, completion, cached in zip(parsed, prompt_shares, completion_shares,
                                                     cached_shares, strict=True)]


def _shares(total: int, weights: Sequence[int]) -> list[int]:
    """`total` split in proportion to `weights` (whole numbers adding up to `total`)."""
    whole = sum(weights)
    if not weights:
        return []
    if whole <= 0:
        shares = [total // len(weights)] * len(weights)
    else:
        shares = [total * weight // whole for weight in weights]
    shares[0] += total - sum(shares)
    return shares


class PackedRequests:
    """The `ModelClient` part that sends packed requests (uses the client's budget, limiter,
    transport and `_accept`)."""

    async def _run_pack(self, state: RunState, pack: list[Job],
                        samples: dict[str, list[Completion | None]], purpose: str) -> None:
        """One request for several prompts. Whatever it does not answer - all of it when the
        request fails - goes back to the queue as jobs asked alone, which carry the retries
        (and find out whether the endpoint rejects list prompts)."""
        cfg = self.config
        if state.error is not None or self._journal_error is not None:
            return
        count = len(pack[0].sample_indices)
        reservations: list[Any] = []
        try:
            for job in pack:
                reservations.append(self._budget.reserve(job.request, count))
        except BaseException:
            for reservation in reservations:
                self._budget.release(reservation)
            raise
        wait = state.pause_until - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        permit = None
        if self._limiter is not None:
            permit = await self._limiter.acquire(sum(
                estimate_prompt_tokens(job.request.prompt) + job.request.params.max_tokens
                * count for job in pack))
        request = pack[0].request
        path, body = build_body(request, model=cfg.model, api=cfg.api, n=count,
                                max_stop_sequences=cfg.max_stop_sequences,
                                token_field=self.token_limit_field)
        body["prompt"] = [job.request.prompt for job in pack]
        sizes = [len(job.request.prompt.encode("utf-8")) for job in pack]
        try:
            response = await self._transport.post(path, body)
            parts = split_packed(response, api=cfg.api, samples_per_prompt=count,
                                 prompt_sizes=sizes,
                                 extra_stops=request.params.stop[cfg.max_stop_sequences:])
        except Exception as error:
            for reservation in reservations:
                self._budget.release(reservation)
            if permit is not None:
                if isinstance(error, EndpointStatusError):
                    self._limiter_outcome(permit, error.status,
                                          parse_retry_after(error.headers))
                elif isinstance(error, (EndpointTimeoutError, EndpointConnectionError)):
                    self._limiter.failed(permit, type(error).__name__)
                else:
                    self._limiter.released(permit)
            if isinstance(error, EndpointStatusError) and error.status in (401, 403):
                raise ModelAccessError(
                    f"the endpoint refused the credentials (HTTP {error.status}); check "
                    "OPENAI_API_KEY and the credentials in OPENAI_BASE_URL") from None
            for job in pack:
                job.packable = False
            state.ready.extendleft(reversed(pack))
            return
        except BaseException:
            for reservation in reservations:
                self._budget.release(reservation)
            if permit is not None:
                self._limiter.released(permit)
            raise
        if permit is not None:
            self._limiter.succeeded(permit, sum(p.prompt_tokens for p in parts)
                                    + request.params.max_tokens * count * len(pack))
        first = True
        for job, part, reservation in zip(pack, parts, reservations, strict=True):
            if not part.texts:
                self._budget.release(reservation)
            else:
                pending = list(job.sample_indices)
                received = self._accept(part, job, pending, samples[job.prompt_digest],
                                        purpose, reservation, count_request=first)
                first = False
                job.sample_indices = pending[received:]
            if job.sample_indices:
                job.packable = False
                state.ready.appendleft(job)
