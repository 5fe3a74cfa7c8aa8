"""Fixtures shared across the suite: a fake model endpoint and round harnesses on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from sipipeline.model.limiter import forget_shared_limiters
from sipipeline_tests.support.fake_model import respond
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer
from sipipeline_tests.support.round_harness import RoundJobHarness


@pytest.fixture(autouse=True)
def fresh_rate_limiters() -> Iterator[None]:
    """Each test's fake endpoints start with no learned limits: a new server may reuse the
    port (and so the endpoint id) of an earlier test's one, e.g. a breaker left open."""
    forget_shared_limiters()
    yield
    forget_shared_limiters()


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    """A fake OpenAI-compatible endpoint on 127.0.0.1 answering like a small base model."""
    with FakeOpenAIServer(responder=respond) as fake:
        yield fake


@pytest.fixture
def harness_for(tmp_path) -> Iterator[Callable[..., RoundJobHarness]]:
    """Make a round harness whose model answers with `responder` (closed at teardown)."""
    made: list[tuple[FakeOpenAIServer, RoundJobHarness]] = []

    def make(responder=respond) -> RoundJobHarness:
        fake = FakeOpenAIServer(responder=responder).start()
        harness = RoundJobHarness(tmp_path / "home", tmp_path / "storage", fake)
        made.append((fake, harness))
        return harness

    yield make
    for fake, harness in made:
        harness.close()
        fake.stop()
