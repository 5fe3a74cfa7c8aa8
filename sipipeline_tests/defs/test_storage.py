"""Parquet storage through universal-pathlib: local folders and URL-addressed filesystems."""

import hashlib
import math

import dagster as dg
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipipeline.defs.partitions import RoundKeyError, round_key, round_number
from sipipeline.defs.storage import (
    MissingRoundError,
    ParquetIOManager,
    RoundStore,
    _ids_digests,
    read_parquet,
    write_parquet,
)
from sipipeline.method.seeds import load_seed_tasks
from sipipeline.paths import DEFAULT_SEED_FILE


def test_a_pool_round_trips_through_parquet_with_nested_columns(tmp_path):
    from upath import UPath

    seeds = load_seed_tasks(DEFAULT_SEED_FILE).head(5)
    path = UPath(tmp_path) / "filtered_tasks" / "round_001.parquet"
    write_parquet(seeds, path, "filtered_tasks")
    back = read_parquet(path)
    assert list(back.columns) == list(seeds.columns)
    assert back["instances"].tolist() == seeds["instances"].tolist()
    assert back["in_context_ids"].tolist() == [[]] * 5
    assert all(math.isnan(v) for v in back["max_rouge_l"])
    assert not list(path.parent.glob("*.partial"))


def test_the_io_manager_and_round_store_work_on_a_url_filesystem():
    """`memory://` stands in for s3:// or gs://: the same UPath code path, no network."""
    base = "memory://sipipeline-io-test"
    seeds = load_seed_tasks(DEFAULT_SEED_FILE).head(3)

    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["round_001"]))
    def filtered_tasks():
        return seeds

    result = dg.materialize([filtered_tasks], partition_key="round_001",
                            resources={"io_manager": ParquetIOManager(base_path=base)})
    assert result.success
    store = RoundStore(base_path=base)
    assert store.rounds("filtered_tasks") == ["round_001"]
    assert store.read("filtered_tasks", "round_001")["task_id"].tolist() == (
        seeds["task_id"].tolist())
    with pytest.raises(MissingRoundError, match="filtered_tasks of round_002 is not materialized"):
        store.read("filtered_tasks", "round_002")
    assert store.local_dir("journal").is_dir()  # remote base: local files go elsewhere


def test_round_keys_are_zero_padded_and_validated():
    assert round_key(1) == "round_001" and round_key(1234) == "round_1234"
    assert round_number("round_012") == 12
    for bad in ("latest", "round_1", "round_abc"):
        with pytest.raises(RoundKeyError, match="not a bootstrap round key"):
            round_number(bad)
    with pytest.raises(RoundKeyError):
        round_key(0)


def test_the_latest_round_is_the_highest_round_number(tmp_path):
    store = RoundStore(base_path=str(tmp_path))
    pool = load_seed_tasks(DEFAULT_SEED_FILE)
    for key, rows in (("round_001", 3), ("round_002", 7), ("round_010", 5)):
        store.write("filtered_tasks", key, pool.head(rows))
    key, latest = store.latest("filtered_tasks")
    assert key == "round_010" and len(latest) == 5
    assert isinstance(latest["instances"].iloc[0], list)
    with pytest.raises(MissingRoundError, match="no materialized round"):
        RoundStore(base_path=str(tmp_path / "empty")).latest("filtered_tasks")


def _grown(pool, number: int, count: int):
    """The pool after round `number`: `count` machine rows appended."""
    import pandas as pd

    from sipipeline.method.schema import pool_frame

    rows = [{"task_id": f"m{number}-{i}", "instruction": f"Task {i} of round {number}.",
             "origin": "machine", "round": number, "is_classification": False,
             "instances": [{"input": "", "output": "ok"}]} for i in range(count)]
    return pd.concat([pool, pool_frame(rows)], ignore_index=True)


def test_each_round_stores_only_the_rows_it_added_and_reads_back_the_whole_pool(tmp_path):
    from sipipeline.defs.storage import DELTA, FULL, REFERENCE

    store = RoundStore(base_path=str(tmp_path))
    pools = [load_seed_tasks(DEFAULT_SEED_FILE)]
    for number in (1, 2, 3):
        pools.append(_grown(pools[-1], number, 40))
        store.write("filtered_tasks", round_key(number), pools[-1])
    kinds = [store.info("filtered_tasks", round_key(n)).kind for n in (1, 2, 3)]
    assert kinds == [FULL, DELTA, DELTA]
    stored_rows = [len(read_parquet(store.path("filtered_tasks", round_key(n))))
                   for n in (1, 2, 3)]
    assert stored_rows == [175 + 40, 40, 40]  # linear in the pool, not in rounds × pool
    back = store.read("filtered_tasks", "round_003")
    assert back["task_id"].tolist() == pools[3]["task_id"].tolist()
    assert back["instances"].tolist() == pools[3]["instances"].tolist()
    assert back.attrs["sipipeline.version"] == store.version_for(
        "filtered_tasks", "round_003", pools[3])
    # The next round's starting pool is stored as a reference to it.
    store.write("seed_pool", "round_004", back)
    assert store.info("seed_pool", "round_004").kind == REFERENCE
    assert len(read_parquet(store.path("seed_pool", "round_004"))) == 0
    assert store.read("seed_pool", "round_004")["task_id"].tolist() == back["task_id"].tolist()
    # A round's own rows, without assembling the pool (the first round's from the full table).
    assert store.read_added("filtered_tasks", "round_003")["task_id"].tolist() == [
        f"m3-{i}" for i in range(40)]
    assert len(store.read_added("filtered_tasks", "round_001")) == 40
    # Pools keep nested columns in Arrow memory; reading a value gives Python objects.
    assert isinstance(back["instances"].dtype, pd.ArrowDtype)
    assert back["instances"].iloc[-1] == [{"input": "", "output": "ok"}]


def test_a_pool_built_on_a_replaced_round_reads_as_it_was_never_mixing_histories(tmp_path):
    from sipipeline.defs.storage import StaleRoundError

    store = RoundStore(base_path=str(tmp_path))
    first = _grown(load_seed_tasks(DEFAULT_SEED_FILE), 1, 10)
    store.write("filtered_tasks", "round_001", first)
    store.write("filtered_tasks", "round_002", _grown(first, 2, 10))
    store.write("seed_pool", "round_003", store.read("filtered_tasks", "round_002"))
    second = store.read("filtered_tasks", "round_002")
    # Round 1 is re-run and adds other tasks: round 2 (and round 3's start) were built on the
    # version it replaced, which is kept, so they still read as they were (and are stale).
    rerun = _grown(load_seed_tasks(DEFAULT_SEED_FILE), 1, 12)
    store.write("filtered_tasks", "round_001", rerun)
    assert len(store.read("filtered_tasks", "round_001")) == 175 + 12
    assert store.read("filtered_tasks", "round_002")["task_id"].tolist() == (
        second["task_id"].tolist())
    assert store.read("seed_pool", "round_003")["task_id"].tolist() == second["task_id"].tolist()
    assert store.rounds("filtered_tasks") == ["round_001", "round_002"]  # archives not listed
    # Without the replaced version, a later round cannot be read: it says what to do.
    store.archived_path("filtered_tasks", "round_001", first.attrs["sipipeline.version"]).unlink()
    with pytest.raises(StaleRoundError, match="re-materialize round_002"):
        store.read("filtered_tasks", "round_002")
    with pytest.raises(StaleRoundError, match="re-materialize round_002"):
        store.read("seed_pool", "round_003")


def test_a_pool_that_does_not_extend_the_previous_one_is_stored_whole(tmp_path):
    from sipipeline.defs.storage import FULL

    store = RoundStore(base_path=str(tmp_path))
    seeds = load_seed_tasks(DEFAULT_SEED_FILE)
    store.write("filtered_tasks", "round_001", _grown(seeds, 1, 5))
    reordered = _grown(seeds, 1, 5).iloc[::-1].reset_index(drop=True)
    store.write("filtered_tasks", "round_002", _grown(reordered, 2, 5))
    assert store.info("filtered_tasks", "round_002").kind == FULL
    assert len(store.read("filtered_tasks", "round_002")) == 175 + 10


def test_a_starting_pool_changed_after_it_was_read_is_stored_whole(tmp_path):
    from sipipeline.defs.storage import FULL

    store = RoundStore(base_path=str(tmp_path))
    store.write("filtered_tasks", "round_001", _grown(load_seed_tasks(DEFAULT_SEED_FILE), 1, 8))
    pool = store.read("filtered_tasks", "round_001")
    fewer = pool[pool["round"] == 0]  # pandas keeps attrs through the filter
    assert fewer.attrs == pool.attrs
    store.write("seed_pool", "round_002", fewer)
    assert store.info("seed_pool", "round_002").kind == FULL
    assert len(store.read("seed_pool", "round_002")) == 175


@pytest.mark.parametrize("asset", ["generated_instructions", "classification_labels",
                                   "instances"])
def test_rounds_stored_before_journal_keys_stay_readable_and_writable(tmp_path, asset):
    import pyarrow.parquet as pq

    from sipipeline.method.schema import SCHEMAS, frame, to_arrow

    row = frame([{"task_id": "mi-1", "round": 1, "instruction": "Name a colour."}],
                SCHEMAS[asset])
    path = tmp_path / asset / "round_001.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(to_arrow(row, SCHEMAS[asset]).drop(["journal_key"]), path)
    store = RoundStore(base_path=str(tmp_path))
    table = store.read(asset, "round_001")
    assert table["journal_key"].tolist() == [None]
    assert table["instruction"].tolist() == ["Name a colour."]
    store.write(asset, "round_002", table)
    assert store.read(asset, "round_002").columns.tolist() == SCHEMAS[asset].names


@settings(max_examples=80, deadline=None)
@given(ids=st.lists(st.text(min_size=0, max_size=6), max_size=12), data=st.data())
def test_prefix_and_whole_id_digests_in_one_pass_equal_separate_digests(ids, data):
    prefix_rows = data.draw(st.integers(0, len(ids)))

    def separate(values: list[str]) -> str:
        return hashlib.sha256("\x1f".join(values).encode("utf-8")).hexdigest()

    assert _ids_digests(pd.Series(ids, dtype=object), prefix_rows) == (
        separate(ids[:prefix_rows]), separate(ids))
