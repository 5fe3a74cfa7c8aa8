"""Parquet storage through universal-pathlib: local folders and URL-addressed filesystems."""

import math

import dagster as dg
import pytest

from sipipeline.defs.partitions import RoundKeyError, round_key, round_number
from sipipeline.defs.storage import (
    MissingRoundError,
    ParquetIOManager,
    RoundStore,
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
