"""A client killed with SIGKILL mid-batch loses nothing it was paid for.

A subprocess sends a batch through ModelClient to the fake server; the server answers the
first requests and holds the rest, so the kill lands while requests are in flight. The batch
is then run again: the server must have delivered each distinct request exactly once over
both runs, and the output must equal that of an uninterrupted run.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from sipipeline.model.client import ModelClient
from sipipeline.model.config import ModelClientConfig
from sipipeline.model.types import CompletionRequest, SamplingParams
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer
from sipipeline_tests.support.kill_helpers import journaled_samples, kill_when

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSWERED_BEFORE_KILL = 12
BATCH_SIZE = 40
IN_FLIGHT = 6


def batch() -> list[CompletionRequest]:
    params = SamplingParams(max_tokens=32, temperature=0.7, top_p=0.5, stop=("\n\n",))
    return [CompletionRequest(f"Come up with task number {i}:\n1.", params, n=2)
            for i in range(BATCH_SIZE)]


CHILD = textwrap.dedent(
    """
    import sys
    from sipipeline.model.client import ModelClient
    from sipipeline.model.config import ModelClientConfig
    from sipipeline_tests.model.test_client_kill import batch

    config = ModelClientConfig(base_url=sys.argv[1], model="fake-model",
                               journal_path=sys.argv[2], api_key="none",
                               max_in_flight={in_flight})
    ModelClient(config).complete(batch(), purpose="generated_instructions")
    print("finished")
    """
).format(in_flight=IN_FLIGHT)


def run_batch(server: FakeOpenAIServer, journal: Path) -> list[list[str]]:
    config = ModelClientConfig(base_url=server.base_url, model="fake-model",
                               journal_path=str(journal), api_key="none",
                               max_in_flight=IN_FLIGHT)
    with ModelClient(config) as client:
        results = client.complete(batch(), purpose="generated_instructions")
    return [[c.text for c in row] for row in results]


def test_sigkill_mid_batch_then_rerun_sends_each_request_once(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"

    def hold_after_some(number: int, body: dict) -> str | None:
        return "hold" if number >= ANSWERED_BEFORE_KILL else None

    with FakeOpenAIServer(faults=hold_after_some, latency_s=0.01) as server:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
        child = subprocess.Popen([sys.executable, "-c", CHILD, server.base_url, str(journal)],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        kill_when(child, lambda: (journaled_samples(journal) >= 2 * ANSWERED_BEFORE_KILL
                                  and server.held_count() >= IN_FLIGHT), timeout_s=60)
        assert journaled_samples(journal) == 2 * ANSWERED_BEFORE_KILL
        server.release_held()  # held requests now find their client gone: not delivered
        assert server.wait_idle()
        assert len(server.paid_log()) == ANSWERED_BEFORE_KILL

        resumed = run_batch(server, journal)
        server.wait_idle()
        paid = collections.Counter(server.request_identity(e) for e in server.paid_log())
        assert len(paid) == BATCH_SIZE and set(paid.values()) == {1}
        assert journaled_samples(journal) == 2 * BATCH_SIZE

    with FakeOpenAIServer() as fresh_server:
        uninterrupted = run_batch(fresh_server, tmp_path / "uninterrupted.sqlite")
    assert resumed == uninterrupted
