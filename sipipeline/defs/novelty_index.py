"""The pool's novelty-filter encoding, kept from round to round in the local folder.

`generated_instructions[N]` decides candidates against `seed_pool[N]`, tokenized and encoded
(`similarity.EncodedPool`). `filtered_tasks[N]` extends that encoding by the tasks it adds and
keeps it under the new pool's version, so round N+1 loads it instead of re-tokenizing the whole
pool: each round encodes only what it adds. It is a cache: when it is missing, unreadable or
of another size, the encoding is rebuilt from the texts, with the same codes.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pandas as pd

from sipipeline.defs.storage import VERSION_ATTR, RoundStore
from sipipeline.similarity import EncodedPool, encode_pool

INDEX_DIR = "novelty_index"
#: Encodings kept: the newest pool's and the one before (a round re-run on it).
KEEP = 2
_SAFE_VERSION = re.compile(r"^[0-9a-f]{8,64}$")


def _path(store: RoundStore, version: object) -> Path | None:
    if not isinstance(version, str) or not _SAFE_VERSION.match(version):
        return None
    return store.local_dir(INDEX_DIR) / f"{version}.npz"


def pool_encoding(store: RoundStore, pool: pd.DataFrame) -> EncodedPool:
    """The encoding of `pool`: the kept one for its stored version, else built and kept."""
    path = _path(store, pool.attrs.get(VERSION_ATTR))
    if path is not None and path.is_file():
        try:
            kept = EncodedPool.load(str(path))
        except (OSError, ValueError, KeyError, UnicodeDecodeError, zipfile.BadZipFile):
            kept = None
        if kept is not None and len(kept) == len(pool):
            return kept
    encoded = encode_pool(pool["instruction"].tolist())
    if path is not None:
        _keep(store, path, encoded)
    return encoded


def keep_next_encoding(store: RoundStore, seed_pool: pd.DataFrame, pool: pd.DataFrame,
                       version: str) -> None:
    """Keep the encoding of `pool` (`seed_pool` plus the rows the round added) under
    `version`, extended from the seed pool's rather than rebuilt."""
    path = _path(store, version)
    if path is None:
        return
    added = pool["instruction"].iloc[len(seed_pool):].tolist()
    _keep(store, path, pool_encoding(store, seed_pool).extended(added))


def _keep(store: RoundStore, path: Path, encoded: EncodedPool) -> None:
    if not encoded.save(str(path)):
        return
    try:  # another process may be pruning too: a file gone meanwhile is fine
        kept = sorted(((p.stat().st_mtime, p) for p in store.local_dir(INDEX_DIR).glob("*.npz")),
                      key=lambda entry: entry[0])
        for _, old in kept[:-KEEP]:
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        pass
