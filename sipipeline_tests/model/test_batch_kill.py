"""SIGKILL at every phase of batch delivery, then run again: no request is submitted twice.

A child process sends requests through `BatchModelClient`; the fake Batch API withholds its
answer at one phase (before or after storing the upload, before or after creating the batch,
while polling, while downloading), the child is killed there, and the requests are asked for
again in this process. Each custom_id must reach a created batch exactly once, and the answers
must equal an online run's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sipipeline.model.batch_manifest import Phase
from sipipeline_tests.support.batch_helpers import batch_client, online_texts, requests_for, texts
from sipipeline_tests.support.fake_batch_server import FakeBatchServer
from sipipeline_tests.support.kill_helpers import kill_when

REPO_ROOT = Path(__file__).resolve().parents[2]
COUNT = 6

CHILD = textwrap.dedent(
    """
    import sys
    from sipipeline_tests.support.batch_helpers import batch_client, requests_for

    with batch_client(sys.argv[1], sys.argv[2]) as client:
        client.complete(requests_for({count}, n=2), purpose="generated_instructions")
    print("finished")
    """
).format(count=COUNT)


@pytest.mark.parametrize("phase", ["before_upload", "upload", "before_create", "create",
                                   "retrieve", "content"])
def test_a_kill_at_any_phase_resumes_without_submitting_anything_twice(tmp_path, phase):
    journal = tmp_path / "journal.sqlite"
    requests = requests_for(COUNT, n=2)
    env = dict(os.environ, PYTHONPATH=f"{REPO_ROOT}{os.pathsep}"
                                      f"{os.environ.get('PYTHONPATH', '')}")
    with FakeBatchServer(holds={phase}) as server:
        child = subprocess.Popen([sys.executable, "-c", CHILD, server.base_url, str(journal)],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        kill_when(child, lambda: server.held >= 1, timeout_s=60)
        server.release()
        with batch_client(server.base_url, journal) as client:
            got = client.complete(requests, purpose="generated_instructions")
            assert {row.phase for row in client.manifest.batches()} == {Phase.RECONCILED}
        assert len(server.submitted) == COUNT
        assert set(server.submitted.values()) == {1}, server.submitted
        assert len(server.batches) == 1
        assert [f["purpose"] for f in server.files.values()].count("batch") == 1
    assert texts(got) == online_texts(requests, tmp_path / "online.sqlite")
