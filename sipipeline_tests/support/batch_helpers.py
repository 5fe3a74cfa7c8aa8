"""Shared by the batch tests: a batch client and an online client on the same fake answers."""

from __future__ import annotations

from pathlib import Path

from sipipeline.model.batch import BatchModelClient
from sipipeline.model.client import ModelClient
from sipipeline.model.config import ModelClientConfig
from sipipeline.model.pricing import TokenPrice
from sipipeline.model.types import CompletionRequest, SamplingParams
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer

PRICE = TokenPrice(2.0, 4.0)
PARAMS = SamplingParams(max_tokens=16, temperature=0.7, stop=("\n\n", "A", "B", "C", "Z."))


def requests_for(count: int, n: int = 1) -> list[CompletionRequest]:
    return [CompletionRequest(f"Come up with task number {i}:\n1.", PARAMS, n=n)
            for i in range(count)]


def settings(base_url: str, journal: Path, **overrides) -> ModelClientConfig:
    values = dict(base_url=base_url, model="fake-model", journal_path=str(journal),
                  api_key="sk-test-key-0123456789", timeout_s=5.0, backoff_base_s=0.001,
                  backoff_max_s=0.01, max_in_flight=4, price=PRICE)
    values.update(overrides)
    return ModelClientConfig(**values)


def batch_client(base_url: str, journal: Path, *, wait_s: float = 60.0,
                 log: list[str] | None = None, **overrides) -> BatchModelClient:
    return BatchModelClient(settings(base_url, journal, **overrides), wait_s=wait_s, poll_s=0.0,
                            log=None if log is None else log.append)


def online_texts(requests: list[CompletionRequest], journal: Path,
                 **overrides) -> list[list[tuple[str, str]]]:
    """What the online client gets for `requests` from the fake online server."""
    with FakeOpenAIServer() as server, ModelClient(
            settings(server.base_url, journal, **overrides)) as client:
        return texts(client.complete(requests, purpose="generated_instructions"))


def texts(results: list[list]) -> list[list[tuple[str, str]]]:
    return [[(c.text, c.finish_reason) for c in row] for row in results]
