"""The run lock in DAGSTER_HOME: one holder, who says what it runs; the kernel frees it."""

import threading

import pytest

from sipipeline.run_lock import RunLock, RunLockHeldError


def test_a_second_holder_is_refused_with_the_first_ones_description(tmp_path):
    first = RunLock(tmp_path)
    first.acquire("pid 1 is running round_003 in run abc")
    with pytest.raises(RunLockHeldError) as refused:
        RunLock(tmp_path).acquire("pid 2")
    assert refused.value.holder == "pid 1 is running round_003 in run abc"
    first.describe("pid 1 is running round_004 in run def")
    with pytest.raises(RunLockHeldError, match="round_004 in run def"):
        RunLock(tmp_path).acquire("pid 2")
    first.release()
    with RunLock(tmp_path) as second:
        assert "pid" in second.holder()


def test_a_waiting_starter_gets_the_lock_when_the_holder_releases_it(tmp_path):
    first = RunLock(tmp_path)
    first.acquire("pid 1 runs round_001")
    seen, acquired = [], threading.Event()

    def wait_for_it():
        waiter = RunLock(tmp_path, wait=True)
        waiter.acquire("pid 2", on_wait=seen.append)
        acquired.set()
        waiter.release()

    thread = threading.Thread(target=wait_for_it)
    thread.start()
    while not seen and thread.is_alive():
        thread.join(0.01)
    assert seen == ["pid 1 runs round_001"] and not acquired.is_set()
    first.release()
    thread.join()
    assert acquired.is_set()
