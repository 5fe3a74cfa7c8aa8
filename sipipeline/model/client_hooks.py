"""Parts of `ModelClient`, kept apart to keep the client readable: how it talks to the shared
rate limiter, what it learns about an endpoint (remembered in the journal), and the cost
estimates behind the plan and the budget check."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence

from sipipeline.model.endpoint_facts import RESPONSE_FORMAT, TOKEN_LIMIT_FIELD, UNSUPPORTED
from sipipeline.model.jobs import Job
from sipipeline.model.limiter import Permit
from sipipeline.model.plan import PlannedCall, StepEstimate, estimate_step, journal_usage
from sipipeline.model.pricing import estimate_prompt_tokens
from sipipeline.model.types import CompletionRequest


class LimiterHooks:
    """The client's side of the per-endpoint limiter (uses `self._limiter`)."""

    async def _admit(self, request: CompletionRequest, n: int) -> Permit | None:
        """Wait for the shared limiter's go: a slot in the window and the request's tokens."""
        if self._limiter is None:
            return None
        tokens = estimate_prompt_tokens(request.prompt) + request.params.max_tokens * n
        return await self._limiter.acquire(tokens)

    def _limiter_outcome(self, permit: Permit | None, status: int,
                         retry_after: float | None) -> None:
        """Tell the limiter how an HTTP error answer went (429 and 5xx shape its pacing)."""
        if permit is None or self._limiter is None:
            return
        if status == 429:
            self._limiter.rate_limited_answer(permit, retry_after)
        elif status >= 500:
            self._limiter.failed(permit, f"HTTP {status}")
        else:
            self._limiter.released(permit)


class EndpointLearning:
    """Facts the client learns from an endpoint's answers (uses `self._facts`)."""

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


class CostEstimates:
    """Expected usage of requests, from the journal's usage of the same purpose when any."""

    def estimate(self, requests: Sequence[CompletionRequest], purpose: str) -> StepEstimate:
        """What `requests` are expected to use (the cost plan's estimate, from the journal's
        usage of `purpose` when there is any); remembered for `estimated(purpose)`."""
        calls = [PlannedCall(len(r.prompt.encode("utf-8")), r.n, r.params.max_tokens)
                 for r in requests]
        estimate = estimate_step(purpose, calls, self.config.max_n_per_request,
                                 journal_usage(self.journal.path).get(purpose),
                                 self.config.pack_limit())
        self._estimates[purpose] = estimate
        return estimate

    def estimated(self, purpose: str) -> StepEstimate | None:
        """The last `estimate` made for `purpose`, if any."""
        return self._estimates.get(purpose)

    def _check_budget_covers(self, jobs: list[Job], purpose: str) -> None:
        """Stop before sending anything when the work's expected cost does not fit the budget
        (from the journal's usage of this purpose when there is any)."""
        calls = [PlannedCall(len(job.request.prompt.encode("utf-8")), len(job.sample_indices),
                             job.request.params.max_tokens) for job in jobs]
        estimate = estimate_step(purpose, calls, self.config.max_n_per_request,
                                 journal_usage(self.journal.path).get(purpose),
                                 self.config.pack_limit())
        self._budget.check_can_cover(
            estimate.cost_usd(self.config.price),
            f"{purpose} ({estimate.requests} requests, from {estimate.basis})")
