"""Where round data lives: `<base>/<asset>/<round>.parquet`, local or s3://, gs:// (UPath).

`RoundStore` is the one owner of that layout: the IO manager, the assets that read other rounds,
the export command and the tests all go through it.

Files that need a real filesystem — the response journal (SQLite), and reports and exports
while they are being written — live in a local working folder. With a remote base, reports and
exports are then published under the base (`<base>/reports/<round>/`, `<base>/exports/`), so
every worker and reader finds them there; the journal stays local and must be on a path every
run worker reaches (one machine's DAGSTER_HOME, or a shared volume set as SIPIPELINE_LOCAL_DIR).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
from upath import UPath

from sipipeline.defs.partitions import RoundKeyError, round_number
from sipipeline.method.schema import SCHEMAS, from_arrow, to_arrow
from sipipeline.paths import LOCAL_DIR_ENV, dagster_home

PARQUET_SUFFIX = ".parquet"
LOCAL_PROTOCOLS = ("", "file", "local")


class MissingRoundError(RuntimeError):
    """A round asks for data of a round that has not been materialized."""


class RemoteLocalDirError(ValueError):
    """The local working folder (home of the SQLite response journal) was given as a URL."""


def is_remote(location: str) -> bool:
    """Whether a storage location is a URL of a remote filesystem (s3://, gs://, memory://...)."""
    return UPath(location).protocol not in LOCAL_PROTOCOLS


def checked_local_dir(location: str, source: str) -> Path:
    """`location` as a local folder, or a clear error when it names a remote filesystem.

    The response journal is a SQLite database: SQLite needs a real filesystem with working
    locks, which object stores do not offer, so it can never live under s3:// or gs://.
    """
    if is_remote(location):
        raise RemoteLocalDirError(
            f"{source}={location!r} is a remote location, but the local working folder holds "
            "the response journal, a SQLite database that needs a local filesystem. Give a "
            "local path that every run worker reaches (e.g. a shared volume mounted at the same "
            "path); round data, reports and exports go to SIPIPELINE_STORAGE, which may be "
            "s3:// or gs://.")
    return Path(UPath(location).path).expanduser().resolve()


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
    local_path: str | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # A remote journal location fails the run before any step calls the model.
        self.local_root()

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
        return read_parquet(path)

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

    def is_remote(self) -> bool:
        return is_remote(self.base_path)

    def local_root(self) -> Path:
        """The local working folder: `local_path`, else `$SIPIPELINE_LOCAL_DIR`, else the base
        when it is local, else `$DAGSTER_HOME/sipipeline-local`. Never a URL (see
        `checked_local_dir`)."""
        if self.local_path:
            return checked_local_dir(self.local_path, "local_path")
        if os.environ.get(LOCAL_DIR_ENV):
            return checked_local_dir(os.environ[LOCAL_DIR_ENV], LOCAL_DIR_ENV)
        if not self.is_remote():
            return Path(UPath(self.base_path).path)
        return dagster_home() / "sipipeline-local"

    def local_dir(self, name: str) -> Path:
        """A local folder for files that need a real filesystem (journal, report staging)."""
        folder = self.local_root() / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def publish(self, name: str) -> str:
        """Copy `local_dir(name)` to `<base>/<name>` when the base is remote; its location.

        With a local base the folder is already inside the base and nothing is copied.
        """
        local = self.local_dir(name)
        if not self.is_remote():
            return str(local)
        target = UPath(self.base_path) / name
        for source in sorted(p for p in local.rglob("*") if p.is_file()):
            destination = target.joinpath(*source.relative_to(local).parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            with source.open("rb") as reader, destination.open("wb") as writer:
                writer.write(reader.read())
        return str(target)

    def published(self, name: str, local_file: str | os.PathLike) -> str:
        """Where a file written under `local_dir(name)` is found after `publish(name)`."""
        if not self.is_remote():
            return str(local_file)
        relative = Path(local_file).resolve().relative_to(self.local_dir(name).resolve())
        return str((UPath(self.base_path) / name).joinpath(*relative.parts))

    def published_files(self, name: str, files: Mapping[str, str]) -> dict[str, str]:
        """Publish `local_dir(name)` and map each local file of `files` to its location."""
        self.publish(name)
        return {key: self.published(name, path) for key, path in files.items()}


def location_url(location: str) -> str:
    """A link for a stored file: file:// for a local path, the URL itself for a remote one."""
    return location if is_remote(location) else f"file://{location}"


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
