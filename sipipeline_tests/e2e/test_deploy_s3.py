"""Shared storage: rounds, reports and exports on an S3 API server on 127.0.0.1.

The same round job as everywhere else, with `SIPIPELINE_STORAGE=s3://bucket/prefix`; what it
stored is listed through the S3 API (boto3), not through the code under test. The response
journal is SQLite and stays local; a remote journal location is refused with a clear error.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from sipipeline.defs import assets
from sipipeline.defs.partitions import round_key
from sipipeline.defs.storage import RemoteLocalDirError, RoundStore
from sipipeline.paths import LOCAL_DIR_ENV
from sipipeline_tests.support.local_s3 import local_s3
from sipipeline_tests.support.round_harness import RoundJobHarness

ROUND_TABLES = ["seed_pool", "generated_instructions", "classification_labels", "instances",
                "filtered_tasks", "dataset_stats"]
PREFIX = "team/selfinstruct"


@pytest.fixture
def s3(monkeypatch):
    with local_s3(monkeypatch) as store:
        yield store


def test_two_rounds_store_tables_reports_and_exports_in_s3(tmp_path, monkeypatch, s3, server):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(LOCAL_DIR_ENV, raising=False)
    base = f"s3://{s3.bucket}/{PREFIX}"
    remote = RoundJobHarness(tmp_path / "home", base, server)
    try:
        for number in (1, 2):
            assert remote.run_round(number, num_prompts=2).success
        exported = remote.materialize([assets.fine_tuning_exports])
        assert exported.success
        pool_two = remote.read("filtered_tasks", 2)
    finally:
        remote.close()

    keys = s3.keys(PREFIX + "/")
    for number in (1, 2):
        for table in ROUND_TABLES:
            assert f"{PREFIX}/{table}/{round_key(number)}.parquet" in keys, table
        assert f"{PREFIX}/reports/{round_key(number)}/report.html" in keys
    assert not [k for k in keys if k.endswith(".partial")]
    exports = [k for k in keys if k.startswith(f"{PREFIX}/exports/")]
    assert f"{PREFIX}/exports/README.md" in exports
    assert f"{PREFIX}/exports/export_manifest.json" in exports
    assert len(exports) > 2
    # The journal is SQLite: it stayed on the local filesystem and never went to the bucket.
    assert not [k for k in keys if "journal" in k]
    assert (tmp_path / "home" / "sipipeline-local" / "journal" / "llm_journal.sqlite").is_file()

    # The exported manifest, read back through the S3 API, describes round 2's pool.
    body = s3.client().get_object(Bucket=s3.bucket, Key=f"{PREFIX}/exports/export_manifest.json")
    assert b'"counts"' in body["Body"].read()
    assert len(pool_two) > 175

    # The same rounds on local storage with the same fake model give the same tables.
    local = RoundJobHarness(tmp_path / "local-home", tmp_path / "local-storage", server)
    try:
        for number in (1, 2):
            assert local.run_round(number, num_prompts=2).success
        remote_store = RoundStore(base_path=base)
        for number in (1, 2):
            for table in ROUND_TABLES:
                pd.testing.assert_frame_equal(remote_store.read(table, round_key(number)),
                                              local.read(table, number), obj=table)
    finally:
        local.close()


def test_a_remote_journal_location_is_refused_with_a_clear_error(tmp_path, monkeypatch, s3,
                                                                 server):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    store = RoundStore(base_path=f"s3://{s3.bucket}/x", local_path=f"s3://{s3.bucket}/journal")
    with pytest.raises(RemoteLocalDirError, match="SQLite"):
        store.local_dir("journal")

    monkeypatch.setenv(LOCAL_DIR_ENV, f"s3://{s3.bucket}/journal")
    harness = RoundJobHarness(tmp_path / "home", f"s3://{s3.bucket}/x", server)
    try:
        result = harness.run_round(1, num_prompts=1)
    finally:
        harness.close()
    assert not result.success
    # Resources are set up before any step runs: the run fails there, before a model call.
    failure = next(e for e in result.all_events
                   if e.event_type == dg.DagsterEventType.RESOURCE_INIT_FAILURE)
    message = failure.event_specific_data.error.to_string()  # the error and its causes
    assert LOCAL_DIR_ENV in message and "SQLite" in message
    assert server.completion_log() == []  # refused before a single request was paid for


def test_the_local_working_folder_is_the_base_or_an_explicit_local_path(tmp_path, monkeypatch):
    monkeypatch.delenv(LOCAL_DIR_ENV, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert RoundStore(base_path=str(tmp_path / "s")).local_dir("journal") == (
        tmp_path / "s" / "journal")
    assert RoundStore(base_path="memory://b/p").local_dir("journal") == (
        tmp_path / "home" / "sipipeline-local" / "journal")
    monkeypatch.setenv(LOCAL_DIR_ENV, str(tmp_path / "shared-volume"))
    assert RoundStore(base_path="memory://b/p").local_dir("journal") == (
        tmp_path / "shared-volume" / "journal")
    assert RoundStore(base_path="memory://b/p", local_path=f"file://{tmp_path}/x").local_dir(
        "j") == tmp_path / "x" / "j"
