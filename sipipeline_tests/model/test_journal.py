"""The SQLite response journal: lookup, record, durability settings."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sipipeline.model.journal import ResponseJournal


def sample_row(key: str, text: str) -> tuple:
    return (key, "prompt-digest", 0, "http://h/v1", "m", "completions", "p", text, "stop", 5,
            2, "cmpl-1", time.time())


def call_row() -> tuple:
    return ("cmpl-1", "p", "http://h/v1", "m", 1, 5, 2, 0, 0.001, time.time())


def test_record_then_lookup_across_instances(tmp_path: Path) -> None:
    path = str(tmp_path / "sub" / "j.sqlite")
    journal = ResponseJournal(path)
    assert journal.lookup(["a"]) == {}
    journal.record([sample_row("a", "first"), sample_row("b", "second")], [call_row()])
    journal.record([sample_row("a", "ignored duplicate")], [])
    journal.close()
    again = ResponseJournal(path, synchronous="FULL")
    assert again.lookup(["a", "b", "c"]) == {"a": ("first", "stop", 5, 2),
                                              "b": ("second", "stop", 5, 2)}
    assert again.count() == 2
    keys = [f"k{i}" for i in range(1200)]
    again.record([sample_row(k, k) for k in keys], [])
    assert len(again.lookup(keys)) == 1200  # looked up in chunks below SQLite's limit
    again.close()


def test_bad_synchronous_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        ResponseJournal(str(tmp_path / "j.sqlite"), synchronous="OFF")


def test_leases_claim_renew_release(tmp_path: Path) -> None:
    journal = ResponseJournal(str(tmp_path / "j.sqlite"))
    journal.record([sample_row("done", "answer")], [])
    mine, theirs = "this-host-a", "other-host:1:b"
    claims = journal.claim([["done", "k1"], ["k2"]], mine, ttl_s=60)
    assert claims[0].journaled == {"done": ("answer", "stop", 5, 2)} and claims[0].leased
    assert claims[1].leased
    # Another owner finds them leased, until this one releases or journals them.
    assert [c.leased for c in journal.claim([["k1"], ["k2"], ["k3"]], theirs, 60)] == \
        [False, False, True]
    journal.release(mine, ["k1"])
    journal.record([sample_row("k2", "two")], [])
    again = journal.claim([["k1"], ["k2"]], theirs, 60)
    assert again[0].leased and again[1].journaled == {"k2": ("two", "stop", 5, 2)}
    # An expired lease blocks nobody; renewing keeps it alive.
    journal.claim([["k4"]], mine, ttl_s=-1)
    assert journal.claim([["k4"]], theirs, 60)[0].leased
    journal.claim([["k5"]], mine, ttl_s=-1)
    journal.renew(mine, ttl_s=60)
    assert not journal.claim([["k5"]], theirs, 60)[0].leased
    journal.release(mine)
    assert journal.claim([["k5"]], theirs, 60)[0].leased
    journal.close()
