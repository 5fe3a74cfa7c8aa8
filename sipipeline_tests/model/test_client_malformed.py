"""Answers whose choices carry no usable text are retried, never journaled, never re-served."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sipipeline.model.types import ModelAccessError
from sipipeline_tests.support.client_helpers import expected_texts, make_client, requests_for
from sipipeline_tests.support.fake_openai_server import TEXTLESS_FAULTS, FakeOpenAIServer


def journaled_texts(journal: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(journal) as db:
        return db.execute("SELECT text, finish_reason FROM samples").fetchall()


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_textless_choices_are_retried_and_not_journaled(tmp_path: Path, api: str,
                                                        transport: str) -> None:
    journal = tmp_path / "j.sqlite"
    with FakeOpenAIServer(faults=list(TEXTLESS_FAULTS)) as server:
        with make_client(server, journal, max_in_flight=1, api=api,
                         http_transport=transport) as client:
            batch = requests_for(2)
            results = client.complete(batch, purpose="p")
            usage = client.usage("p")
        assert usage.retries == len(TEXTLESS_FAULTS)
        assert all(c.text and c.finish_reason == "stop" for row in results for c in row)
        if api == "completions":
            assert [[c.text for c in row] for row in results] == [expected_texts(r)
                                                                  for r in batch]
        rows = journaled_texts(journal)
        assert len(rows) == 4 and all(text and finish == "stop" for text, finish in rows)
        # The textless answers were accounted as calls, with no samples.
        with sqlite3.connect(journal) as db:
            samples_per_call = [n for (n,) in db.execute("SELECT n_samples FROM calls")]
        assert sorted(samples_per_call) == [0] * len(TEXTLESS_FAULTS) + [2, 2]


def test_only_textless_answers_fail_clearly_and_a_rerun_asks_again(tmp_path: Path,
                                                                   transport: str) -> None:
    journal = tmp_path / "j.sqlite"
    with FakeOpenAIServer(faults=lambda number, body: "no_text") as server:
        with make_client(server, journal, max_retries=2, max_in_flight=1,
                         http_transport=transport) as client, \
                pytest.raises(ModelAccessError,
                              match="malformed response from the endpoint.*without text"):
            client.complete(requests_for(1), purpose="p")
        assert journaled_texts(journal) == []
        assert len(server.completion_log()) == 3
        server.set_faults(None)
        with make_client(server, journal, http_transport=transport) as client:
            (row,) = client.complete(requests_for(1), purpose="p")
        assert not any(c.from_journal for c in row)
        assert [c.text for c in row] == expected_texts(requests_for(1)[0])


def test_one_textless_choice_among_good_ones_is_asked_for_again(tmp_path: Path) -> None:
    with FakeOpenAIServer(faults=["first_choice_textless"]) as server, \
            make_client(server, tmp_path / "j.sqlite", max_in_flight=1) as client:
        (row,) = client.complete(requests_for(1, n=3), purpose="p")
        assert [c.sample_index for c in row] == [0, 1, 2] and all(c.text for c in row)
        assert [e["body"].get("n", 1) for e in server.completion_log()] == [3, 1]


def test_an_explicit_empty_completion_is_a_real_answer(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    with FakeOpenAIServer(faults=["empty_text"]) as server, \
            make_client(server, journal, max_in_flight=1) as client:
        (row,) = client.complete(requests_for(1, n=1), purpose="p")
        assert (row[0].text, row[0].finish_reason) == ("", "stop")
        assert client.usage("p").retries == 0
    assert journaled_texts(journal) == [("", "stop")]
