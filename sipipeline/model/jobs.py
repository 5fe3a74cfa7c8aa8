"""The work of one `ModelClient.complete()` call: jobs (one request each) and their queue."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from sipipeline.model.keys import sample_key
from sipipeline.model.types import CompletionRequest, ModelAccessError


@dataclass
class Job:
    """One HTTP request to make: some samples of one prompt."""

    request: CompletionRequest
    prompt_digest: str
    sample_indices: list[int]
    packable: bool = True  # False: asked alone (after a packed request for it failed)


class RunState:
    """Shared by the workers of one `complete()` call (all on the loop thread).

    `ready` jobs hold their leases and may be sent; `waiting` jobs want samples another
    client has leased, and move to `ready` (or are answered from the journal) as those leases
    end. `changed` wakes idle workers when that happens or the run fails.
    """

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.ready: deque[Job] = deque()
        self.waiting: list[Job] = []
        self.error: ModelAccessError | None = None
        self.pause_until = 0.0
        self.changed = asyncio.Condition()

    def next_job(self) -> Job | None:
        return self.ready.popleft() if self.ready else None

    def fail(self, error: ModelAccessError) -> None:
        if self.error is None:
            self.error = error

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()


def job_keys(job: Job) -> list[str]:
    return [sample_key(job.prompt_digest, index) for index in job.sample_indices]
