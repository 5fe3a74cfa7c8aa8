"""Fine-tuning exports of the bootstrapped dataset: the chosen formats, a card and a manifest.

`export_dataset` prepares the records once (`records`: deduplicated, split by task, shuffled),
writes each chosen format's split files through the registry (`formats`), then the dataset card
(`card`) and a manifest with every file's SHA-256. Every file is replaced whole (`atomic`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from sipipeline.reporting.atomic import write_text
from sipipeline.reporting.card import dataset_card, public_info
from sipipeline.reporting.formats import ALL, resolve_formats, split_path, write_split
from sipipeline.reporting.records import SPLITS, prepare_splits


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_dataset(pool: pd.DataFrame, out_dir: str | os.PathLike,
                   formats: Sequence[str] = (ALL,), include_seeds: bool = False,
                   validation_fraction: float = 0.05, seed: int = 42,
                   card_info: Mapping[str, object] | None = None) -> dict[str, list[str]]:
    """Write the chosen formats, the dataset card and a manifest; return {format: [paths]}.

    `card_info` adds facts for the card: "model", "model_terms", "parameters" (a mapping),
    "source", "system_prompt" (used by openai_chat) and anything else (listed as is; keys that
    look like secrets are dropped).
    """
    chosen = resolve_formats(formats)
    info = public_info(card_info)
    system_prompt = info.get("system_prompt")
    system_prompt = str(system_prompt) if system_prompt else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    splits, counts = prepare_splits(pool, include_seeds, validation_fraction, seed)
    written: dict[str, list[str]] = {}
    for fmt in chosen:
        written[fmt] = []
        for split in SPLITS:
            path = split_path(out, fmt, split)
            write_split(fmt, splits[split], path, split, seed, system_prompt)
            written[fmt].append(str(path))
    settings = {"formats": chosen, "include_seeds": include_seeds,
                "validation_fraction": validation_fraction, "seed": seed}
    card = write_text(out / "README.md",
                      dataset_card(pool, splits, counts, settings, info, written, out))
    written["card"] = [str(card)]
    manifest = write_text(out / "export_manifest.json", json.dumps({
        "settings": settings, "counts": counts,
        "splits": {name: len(frame) for name, frame in splits.items()},
        "files": {os.path.relpath(p, out): _sha256(Path(p))
                  for paths in written.values() for p in paths},
    }, indent=2, sort_keys=True) + "\n")
    written["manifest"] = [str(manifest)]
    return written


# ---------------------------------------------------------------------------------------------
# Reading the pipeline's store


def _round_files(base: str) -> list:
    from upath import UPath

    folder = UPath(base) / "filtered_tasks"
    if not folder.exists():
        return []
    return sorted((p for p in folder.iterdir() if re.fullmatch(r"round_\d+\.parquet", p.name)),
                  key=lambda p: (len(p.name), p.name))


def read_latest_pool(storage_base: str | os.PathLike | None = None
                     ) -> tuple[pd.DataFrame, str]:
    """The latest round's `filtered_tasks` (the whole dataset) and its round key.

    Reads `<base>/filtered_tasks/round_*.parquet` (local path or URL via universal-pathlib);
    the highest round key wins. Raises FileNotFoundError when no round has been materialized.
    """
    from sipipeline.method.schema import from_arrow
    from sipipeline.paths import storage_base as default_base

    base = str(storage_base) if storage_base else default_base()
    files = _round_files(base)
    if not files:
        raise FileNotFoundError(f"no materialized round: no filtered_tasks/round_*.parquet "
                                f"under {base} (run `sipipeline run` first)")
    latest = files[-1]
    with latest.open("rb") as handle:
        table = pq.read_table(handle)
    return from_arrow(table), latest.name.removesuffix(".parquet")
