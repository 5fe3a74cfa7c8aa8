"""SIGTERM/SIGINT while requests hang: the client stops promptly and keeps what arrived.

A subprocess sends a batch; the fake server answers the first requests and holds the rest, so
the signal lands while the main thread waits for hung requests. Whatever handler the process
has - one that only records the signal (as Dagster's `capture_interrupts` does), Python's
default SIGINT handler, or SIGTERM's default action - the child stops, the answers that
arrived are in the journal and no lease is left behind.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer
from sipipeline_tests.support.kill_helpers import journaled_samples

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSWERED = 5
IN_FLIGHT = 4
# Bounds a hang, not speed: the old client never returned from the hung requests.
HANG_GUARD_S = 60

CHILD = textwrap.dedent(
    """
    import signal, sys
    from sipipeline.model.client import ModelClient
    from sipipeline.model.config import ModelClientConfig
    from sipipeline.model.types import ModelAccessError
    from sipipeline_tests.support.client_helpers import requests_for

    recorded = []
    if sys.argv[3] == "record-only":
        signal.signal(signal.SIGTERM, lambda signum, frame: recorded.append(signum))
    config = ModelClientConfig(base_url=sys.argv[1], model="fake-model",
                               journal_path=sys.argv[2], api_key="none",
                               max_in_flight={in_flight}, timeout_s=3600)
    with ModelClient(config) as client:
        try:
            client.complete(requests_for(20), purpose="p")
        except ModelAccessError as error:
            print("stopped:", error, "recorded:", recorded, flush=True)
        except KeyboardInterrupt:
            print("stopped: KeyboardInterrupt", flush=True)
    """
).format(in_flight=IN_FLIGHT)


def leases_left(journal: Path) -> int:
    with sqlite3.connect(journal) as db:
        return db.execute("SELECT COUNT(*) FROM leases").fetchone()[0]


@pytest.mark.parametrize(("handler", "signum"), [
    ("record-only", signal.SIGTERM),
    ("default", signal.SIGINT),
    ("default", signal.SIGTERM),
])
def test_a_signal_stops_hung_requests_and_keeps_what_arrived(tmp_path: Path, handler: str,
                                                            signum: int) -> None:
    journal = tmp_path / "journal.sqlite"

    def hold_after_some(number: int, body: dict) -> str | None:
        return "hold" if number >= ANSWERED else None

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    with FakeOpenAIServer(faults=hold_after_some) as server:
        child = subprocess.Popen([sys.executable, "-c", CHILD, server.base_url, str(journal),
                                  handler], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + HANG_GUARD_S
            while journaled_samples(journal) < 2 * ANSWERED or server.held_count() < IN_FLIGHT:
                assert child.poll() is None, child.stderr.read()[-3000:]
                assert time.monotonic() < deadline, "the child made no progress"
                time.sleep(0.02)
            child.send_signal(signum)
            out, err = child.communicate(timeout=HANG_GUARD_S)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        server.release_held()
        assert server.wait_idle()
        paid = len(server.paid_log())
    if (handler, signum) == ("default", signal.SIGTERM):
        assert child.returncode == -signal.SIGTERM
    else:
        assert child.returncode == 0, err[-3000:]
        assert out.startswith("stopped:")
    if handler == "record-only":
        # The application's own handler still saw the signal.
        assert "stopped by SIGTERM" in out and "recorded: [15]" in out
    assert paid == ANSWERED  # the held requests were dropped, not delivered
    assert journaled_samples(journal) == 2 * ANSWERED
    assert leases_left(journal) == 0
