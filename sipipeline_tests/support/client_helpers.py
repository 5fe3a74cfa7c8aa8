"""Shared by the model-client tests: a client on the fake server, request batches, checks."""

from __future__ import annotations

import collections
from pathlib import Path

from sipipeline.model.client import ModelClient
from sipipeline.model.config import ModelClientConfig
from sipipeline.model.types import CompletionRequest, SamplingParams
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer, default_responder

PARAMS = SamplingParams(max_tokens=16, temperature=0.7, top_p=0.5, stop=("\n\n",))


def make_client(server: FakeOpenAIServer, journal: Path, **overrides) -> ModelClient:
    settings = dict(base_url=server.base_url, model="fake-model", journal_path=str(journal),
                    api_key="sk-test-key-0123456789", timeout_s=5.0, backoff_base_s=0.01,
                    backoff_max_s=0.05, max_in_flight=4)
    settings.update(overrides)
    return ModelClient(ModelClientConfig(**settings))


def requests_for(count: int, n: int = 2, seed: int = 0) -> list[CompletionRequest]:
    return [CompletionRequest(f"List of tasks number {i}:\n1.", PARAMS, n=n, sampling_seed=seed)
            for i in range(count)]


def expected_texts(request: CompletionRequest) -> list[str]:
    return [default_responder(request.prompt, {}, i)[0] for i in range(request.n)]


def assert_no_duplicate_paid(server: FakeOpenAIServer) -> None:
    paid = collections.Counter(server.request_identity(e) for e in server.paid_log())
    assert paid and max(paid.values()) == 1, "a paid request was sent twice"
