"""A Retry-After beyond backoff_max_s fails the request at once instead of sleeping it out."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sipipeline.model.types import ModelAccessError
from sipipeline_tests.support.client_helpers import make_client, requests_for
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer, Fault

# Bounds a hang, not speed: the old client slept an hour per retry here.
HANG_GUARD_S = 120


def always_rate_limited(number: int, body: dict) -> Fault:
    return Fault("429", retry_after_s=3600)


def test_an_hour_long_retry_after_fails_at_once_naming_the_wait(tmp_path: Path,
                                                                transport: str) -> None:
    outcome: dict = {}
    with FakeOpenAIServer(faults=always_rate_limited) as server:
        client = make_client(server, tmp_path / "j.sqlite", max_in_flight=2,
                             backoff_max_s=60.0, http_transport=transport)

        def run() -> None:
            try:
                client.complete(requests_for(5), purpose="p")
            except ModelAccessError as error:
                outcome["error"] = error

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(HANG_GUARD_S)
        assert not worker.is_alive(), "the client slept out the Retry-After"
        client.close()
        error = outcome["error"]
        assert "3600 s" in str(error) and "Retry-After" in str(error)
        assert "backoff_max_s" in str(error) and not error.retryable
        # No retries: only the requests already in flight were sent.
        assert len(server.completion_log()) <= 2
        assert client.usage("p").retries == 0


def test_a_retry_after_within_the_ceiling_is_still_honoured(tmp_path: Path) -> None:
    with FakeOpenAIServer(faults=[Fault("429", retry_after_s=0.3)]) as server, \
            make_client(server, tmp_path / "j.sqlite", max_in_flight=1,
                        backoff_max_s=1.0) as client:
        (row,) = client.complete(requests_for(1), purpose="p")
        assert len(row) == 2 and client.usage("p").retries == 1


@pytest.mark.parametrize(("backoff_max_s", "fails"), [(0.2, True), (5.0, False)])
def test_the_ceiling_is_backoff_max_s(tmp_path: Path, backoff_max_s: float, fails: bool) -> None:
    with FakeOpenAIServer(faults=[Fault("429", retry_after_s=0.5)]) as server, \
            make_client(server, tmp_path / "j.sqlite", max_in_flight=1,
                        backoff_max_s=backoff_max_s) as client:
        if fails:
            with pytest.raises(ModelAccessError, match="asked to wait 0.5 s"):
                client.complete(requests_for(1), purpose="p")
        else:
            assert len(client.complete(requests_for(1), purpose="p")[0]) == 2
