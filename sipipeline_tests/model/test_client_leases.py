"""No request in flight twice: clients sharing a journal lease request keys before sending.

Two clients (threads with their own ModelClient, or two processes) on one journal asking for
the same samples: each prompt reaches the server exactly once, the second client is served
from the journal when the first one's answers land, and a lease whose owner died or stopped
renewing it does not block anyone.
"""

from __future__ import annotations

import collections
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from sipipeline.model.journal import ResponseJournal
from sipipeline.model.keys import prompt_key, sample_key
from sipipeline.model.types import ModelAccessError
from sipipeline_tests.support.client_helpers import expected_texts, make_client, requests_for
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer

REPO_ROOT = Path(__file__).resolve().parents[2]


def prompts_sent(server: FakeOpenAIServer) -> collections.Counter:
    return collections.Counter(e["body"]["prompt"] for e in server.completion_log())


def run_together(*calls) -> list:
    """Run the calls in threads released at the same moment; their results or errors."""
    barrier = threading.Barrier(len(calls))
    outcomes: list = [None] * len(calls)

    def run(position: int) -> None:
        barrier.wait()
        try:
            outcomes[position] = calls[position]()
        except Exception as error:  # returned to the test for assertions
            outcomes[position] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_two_clients_on_one_journal_send_each_prompt_once(tmp_path: Path,
                                                          transport: str) -> None:
    journal = tmp_path / "j.sqlite"
    batch = requests_for(12)
    with FakeOpenAIServer(latency_s=0.2) as server:
        first = make_client(server, journal, max_in_flight=3, http_transport=transport)
        second = make_client(server, journal, max_in_flight=3, http_transport=transport)
        with first, second:
            results = run_together(lambda: first.complete(batch, purpose="p"),
                                   lambda: second.complete(batch, purpose="p"))
            served_from_journal = (first.usage("p").journal_hits
                                   + second.usage("p").journal_hits)
        sent = prompts_sent(server)
    assert set(sent) == {r.prompt for r in batch} and set(sent.values()) == {1}
    expected = [expected_texts(r) for r in batch]
    for outcome in results:
        assert [[c.text for c in row] for row in outcome] == expected
    assert served_from_journal == 2 * len(batch)  # one client's share, n=2 each
    with sqlite3.connect(journal) as db:
        assert db.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0


CHILD = textwrap.dedent(
    """
    import sys
    from sipipeline.model.client import ModelClient
    from sipipeline.model.config import ModelClientConfig
    from sipipeline_tests.support.client_helpers import requests_for

    config = ModelClientConfig(base_url=sys.argv[1], model="fake-model",
                               journal_path=sys.argv[2], api_key="none", max_in_flight=3)
    with ModelClient(config) as client:
        rows = client.complete(requests_for(10), purpose="p")
    print(sum(len(row) for row in rows), flush=True)
    """
)


def test_two_processes_on_one_journal_send_each_prompt_once(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    with FakeOpenAIServer(latency_s=0.3) as server:
        children = [subprocess.Popen([sys.executable, "-c", CHILD, server.base_url,
                                      str(journal)], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True) for _ in range(2)]
        for child in children:
            out, err = child.communicate(timeout=120)
            assert child.returncode == 0, err[-3000:]
            assert out.strip() == "20"
        sent = prompts_sent(server)
    assert len(sent) == 10 and set(sent.values()) == {1}




def leased_key(server: FakeOpenAIServer) -> str:
    request = requests_for(1, n=1)[0]
    return sample_key(prompt_key(server.base_url, "fake-model", "completions", request), 0)


def hold_lease(journal: Path, key: str, owner: str, expires_in_s: float) -> None:
    store = ResponseJournal(str(journal))
    store._db.execute("INSERT INTO leases VALUES (?,?,?)", (key, owner, time.time()
                                                            + expires_in_s))
    store.close()


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("owner_kind", ["dead process", "expired lease"])
def test_a_lease_nobody_renews_does_not_block(tmp_path: Path, owner_kind: str) -> None:
    journal = tmp_path / "j.sqlite"
    with FakeOpenAIServer() as server:
        if owner_kind == "dead process":
            owner, expires_in = f"{socket.gethostname()}:{dead_pid()}:gone", 3600.0
        else:  # another host, which stopped renewing a second ago
            owner, expires_in = "another-host:123:stale", -1.0
        hold_lease(journal, leased_key(server), owner, expires_in)
        with make_client(server, journal) as client:
            (row,) = client.complete(requests_for(1, n=1), purpose="p")
        assert [c.text for c in row] == expected_texts(requests_for(1, n=1)[0])
        assert len(server.completion_log()) == 1


def test_a_live_lease_is_waited_for_until_it_expires(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    with FakeOpenAIServer() as server:
        key = leased_key(server)
        expires_at = time.time() + 1.0
        hold_lease(journal, key, "another-host:123:busy", expires_at - time.time())
        with make_client(server, journal) as client:
            (row,) = client.complete(requests_for(1, n=1), purpose="p")
        log = server.completion_log()
        assert len(log) == 1 and row[0].text
        # It was sent only once the lease had run out, not while it was held.
        assert log[0]["time"] >= expires_at
        with sqlite3.connect(journal) as db:
            assert db.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0


def test_a_waiting_client_sends_what_the_lease_holder_failed_to_get(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    batch = requests_for(4)
    doomed = batch[2].prompt
    failures = {"left": 3}  # the first client's request and its two retries

    def fail_doomed_three_times(number: int, body: dict) -> str | None:
        if body.get("prompt") == doomed and failures["left"] > 0:
            failures["left"] -= 1
            return "500"
        return None

    with FakeOpenAIServer(faults=fail_doomed_three_times, latency_s=0.2) as server:
        first = make_client(server, journal, max_retries=2, max_in_flight=4)
        second = make_client(server, journal, max_retries=2, max_in_flight=4)
        with first, second:
            outcomes = run_together(lambda: first.complete(batch, purpose="p"),
                                    lambda: second.complete(batch, purpose="p"))
        sent = prompts_sent(server)
    errors = [o for o in outcomes if isinstance(o, ModelAccessError)]
    successes = [o for o in outcomes if isinstance(o, list)]
    assert len(errors) == 1 and len(successes) == 1
    assert [[c.text for c in row] for row in successes[0]] == [expected_texts(r)
                                                               for r in batch]
    assert sent[doomed] == 4
    assert all(count == 1 for prompt, count in sent.items() if prompt != doomed)
