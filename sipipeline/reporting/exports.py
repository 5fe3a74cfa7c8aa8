"""Fine-tuning exports of the bootstrapped dataset: the chosen formats, a card and a manifest.

`export_dataset` prepares the records once (`records`: deduplicated, split by task, shuffled),
writes each chosen format's split files through the registry (`formats`), then the dataset card
(`card`) and a manifest with every file's SHA-256. Every file is replaced whole (`atomic`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

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
