"""Where sipipeline keeps its files, so the assets, the CLI and the exports agree."""

from __future__ import annotations

import os
from pathlib import Path

STORAGE_ENV = "SIPIPELINE_STORAGE"
ROUND_SLOT_TAG = "sipipeline/round_slot"
PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_SEED_FILE = PACKAGE_DIR.parent / "data" / "seed_tasks.jsonl"


def dagster_home() -> Path:
    """DAGSTER_HOME, or `./.dagster_home` so a fresh checkout works without setup."""
    return Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home").resolve()


def storage_base() -> str:
    """Base of the Parquet store: `$SIPIPELINE_STORAGE`, else `$DAGSTER_HOME/sipipeline`.

    A string, because it may be a URL (s3://…, gs://…) handled by universal-pathlib.
    """
    return os.environ.get(STORAGE_ENV) or str(dagster_home() / "sipipeline")
