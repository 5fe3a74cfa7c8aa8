"""Where round data lives: `<base>/<asset>/<round>.parquet`, local or s3://, gs:// (UPath).

`RoundStore` is the one owner of that layout: the IO manager, the assets that read other rounds,
the export command and the tests all go through it.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
from upath import UPath

from sipipeline.defs.partitions import RoundKeyError, round_number
from sipipeline.method.schema import SCHEMAS, conform, from_arrow, to_arrow
from sipipeline.paths import dagster_home

PARQUET_SUFFIX = ".parquet"
JOURNAL_FILE = "llm_journal.sqlite"


class MissingRoundError(RuntimeError):
    """A round asks for data of a round that has not been materialized."""


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


class RoundStore(dg.ConfigurableResource):
    """Reads and writes round tables directly.

    Round N's `seed_pool` needs round N−1's `filtered_tasks`; Dagster forbids that dependency
    inside one asset graph, and `load_asset_value` fails in subset runs, so rounds reach each
    other through the same files the IO manager writes.
    """

    base_path: str

    def path(self, asset: str, round_key: str) -> UPath:
        return UPath(self.base_path) / asset / f"{round_key}{PARQUET_SUFFIX}"

    def exists(self, asset: str, round_key: str) -> bool:
        return self.path(asset, round_key).exists()

    def read(self, asset: str, round_key: str) -> pd.DataFrame:
        path = self.path(asset, round_key)
        if not path.exists():
            raise MissingRoundError(
                f"{asset} of {round_key} is not materialized (no {path}); "
                f"materialize {round_key} first"
            )
        return conform(read_parquet(path), SCHEMAS.get(asset))

    def write(self, asset: str, round_key: str, df: pd.DataFrame) -> UPath:
        path = self.path(asset, round_key)
        write_parquet(df, path, asset)
        return path

    def rounds(self, asset: str) -> list[str]:
        """Materialized round keys of an asset, in round order."""
        folder = UPath(self.base_path) / asset
        if not folder.exists():
            return []
        keys = []
        for child in folder.iterdir():
            if child.name.endswith(PARQUET_SUFFIX) and child.name.startswith("round_"):
                key = child.name[: -len(PARQUET_SUFFIX)]
                try:
                    round_number(key)
                except RoundKeyError:
                    continue
                keys.append(key)
        return sorted(keys, key=round_number)

    def latest(self, asset: str) -> tuple[str, pd.DataFrame]:
        """The highest materialized round of an asset and its table."""
        keys = self.rounds(asset)
        if not keys:
            raise MissingRoundError(
                f"no materialized round: no {asset}/round_*{PARQUET_SUFFIX} under "
                f"{self.base_path} (run `sipipeline run` first)")
        return keys[-1], self.read(asset, keys[-1])

    def local_dir(self, name: str) -> Path:
        """A local folder for files that need a real filesystem (journal, reports).

        Inside the base when it is local; under DAGSTER_HOME when the base is a remote URL.
        """
        base = UPath(self.base_path)
        root = Path(base.path) if base.protocol in ("", "file", "local") else (
            dagster_home() / "sipipeline-local")
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder


    def journal_path(self) -> Path:
        """The response journal every model-calling asset of this store shares."""
        return self.local_dir("journal") / JOURNAL_FILE


class ParquetIOManager(dg.ConfigurableIOManager):
    """Stores each round partition of a DataFrame asset as one Parquet file, via `RoundStore`."""

    base_path: str

    def _store(self) -> RoundStore:
        return RoundStore(base_path=self.base_path)

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        asset = context.asset_key.path[-1]
        path = self._store().write(asset, _round_of(context), obj)
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        return self._store().read(context.asset_key.path[-1], _round_of(context))


def _round_of(context: dg.OutputContext | dg.InputContext) -> str:
    """The one round partition an input or output is about."""
    if not context.has_asset_partitions:
        raise MissingRoundError(
            f"{context.asset_key.to_user_string()} is not round-partitioned: the Parquet store "
            "holds one file per round")
    return context.asset_partition_key
