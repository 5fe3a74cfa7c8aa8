"""Resources: where rounds are stored (read across rounds) and how the model is reached."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
from upath import UPath

from sipipeline.defs.partitions import round_number
from sipipeline.defs.storage import read_parquet
from sipipeline.paths import dagster_home


class MissingRoundError(RuntimeError):
    """A round asks for data of a round that has not been materialized."""


class RoundStore(dg.ConfigurableResource):
    """Reads other rounds' Parquet files directly.

    Round N's `seed_pool` needs round N−1's `filtered_tasks`; Dagster forbids that dependency
    inside one asset graph, and `load_asset_value` fails in subset runs, so rounds reach each
    other through the same files the IO manager writes.
    """

    base_path: str

    def path(self, asset: str, round_key: str) -> UPath:
        return UPath(self.base_path) / asset / f"{round_key}.parquet"

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

    def rounds(self, asset: str) -> list[str]:
        """Materialized round keys of an asset, in round order."""
        folder = UPath(self.base_path) / asset
        if not folder.exists():
            return []
        keys = []
        for child in folder.iterdir():
            if child.name.endswith(".parquet") and child.name.startswith("round_"):
                key = child.name[: -len(".parquet")]
                try:
                    round_number(key)
                except ValueError:
                    continue
                keys.append(key)
        return sorted(keys, key=round_number)

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
