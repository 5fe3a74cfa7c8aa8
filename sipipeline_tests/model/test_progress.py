"""Progress of a batch of model requests: what the client reports, and how it is throttled."""

from __future__ import annotations

import pytest

from sipipeline.model.progress import Progress, Throttled, fan_out, format_progress
from sipipeline_tests.support.client_helpers import make_client, requests_for
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer


def test_rate_and_eta_count_only_what_the_model_answered():
    progress = Progress("instances", total=10, done=6, from_journal=2, elapsed_s=8.0,
                        prompt_tokens=100, completion_tokens=20, cost_usd=0.0123)
    assert progress.rate == pytest.approx(0.5)
    assert progress.eta_s == pytest.approx(8.0)
    line = format_progress(progress)
    assert line.startswith("instances: 6/10 requests (2 from the journal), 0.50 req/s, ETA 8s")
    assert "120 tokens, $0.0123" in line
    journal_only = Progress("instances", 4, 4, 4, 0.1, 0, 0, 0.0, finished=True)
    assert journal_only.rate is None and journal_only.eta_s == 0.0
    assert ", done," in format_progress(journal_only)
    assert Progress("x", 4, 0, 0, 3.0, 0, 0, 0.0).eta_s is None  # no rate yet


def test_throttled_passes_the_first_then_one_per_interval_and_always_the_last():
    now = [0.0]
    seen: list[int] = []
    throttled = Throttled(lambda p: seen.append(p.done), interval_s=10.0, clock=lambda: now[0])
    for second in range(0, 25):
        now[0] = float(second)
        throttled(Progress("p", 100, second, 0, second, 0, 0, 0.0))
    throttled(Progress("p", 100, 100, 0, 25, 0, 0, 0.0, finished=True))
    assert seen == [0, 10, 20, 100]


def test_fan_out_calls_every_callback_and_skips_none():
    got: list[str] = []
    fan_out(lambda p: got.append("a"), None, lambda p: got.append("b"))(
        Progress("p", 1, 1, 0, 1.0, 0, 0, 0.0))
    assert got == ["a", "b"]


def test_the_client_reports_start_progress_and_end_with_journal_answers(tmp_path):
    requests = requests_for(12, n=1)
    with FakeOpenAIServer(latency_s=0.05) as server:
        reports: list[Progress] = []
        with make_client(server, tmp_path / "journal.sqlite", max_in_flight=2) as client:
            client.complete(requests[:4], purpose="first", progress=reports.append)
            reports.clear()
            client.complete(requests, purpose="instances", progress=reports.append)
    first, last = reports[0], reports[-1]
    assert (first.total, first.done, first.from_journal, first.finished) == (12, 4, 4, False)
    assert (last.total, last.done, last.from_journal, last.finished) == (12, 12, 4, True)
    assert last.prompt_tokens > 0 and last.completion_tokens > 0
    assert [r.done for r in reports] == sorted(r.done for r in reports)
    assert all(r.purpose == "instances" for r in reports)


def test_a_failing_callback_never_fails_the_requests(tmp_path):
    def explode(progress):
        raise RuntimeError("display broke")

    with FakeOpenAIServer() as server, \
            make_client(server, tmp_path / "journal.sqlite") as client:
        answers = client.complete(requests_for(3, n=1), purpose="p", progress=explode)
    assert len(answers) == 3
