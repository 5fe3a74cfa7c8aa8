"""Parquet storage for round assets: `<base>/<asset>/<round>.parquet`, local or s3://, gs://."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
from upath import UPath

from sipipeline.method.schema import SCHEMAS, from_arrow, to_arrow


def write_parquet(df: pd.DataFrame, path: UPath, asset_name: str) -> None:
    """Write through a temporary name first so a crash never leaves half a file behind."""
    table = to_arrow(df, SCHEMAS.get(asset_name))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as handle:
        pq.write_table(table, handle)
    if path.exists():
        path.unlink()
    partial.rename(path)


def read_parquet(path: UPath) -> pd.DataFrame:
    with path.open("rb") as handle:
        return from_arrow(pq.read_table(handle))


class ParquetUPathIOManager(dg.UPathIOManager):
    """Stores each partition of a DataFrame asset as one Parquet file."""

    extension: str = ".parquet"

    def dump_to_path(self, context: dg.OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        write_parquet(obj, path, context.asset_key.path[-1])

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        return read_parquet(path)


class ParquetIOManager(dg.ConfigurableIOManagerFactory):
    """Configurable front for the UPath IO manager (base may be a local path or a URL)."""

    base_path: str

    def create_io_manager(self, context: dg.InitResourceContext) -> ParquetUPathIOManager:
        return ParquetUPathIOManager(base_path=UPath(self.base_path))
