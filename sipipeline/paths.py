"""Where sipipeline keeps its files, so the assets, the CLI and the exports agree."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

STORAGE_ENV = "SIPIPELINE_STORAGE"
#: Local working folder (response journal, report and export staging) when set.
LOCAL_DIR_ENV = "SIPIPELINE_LOCAL_DIR"
ROUND_SLOT_TAG = "sipipeline/round_slot"
PACKAGE_DIR = Path(__file__).resolve().parent
SEED_FILE_NAME = "seed_tasks.jsonl"


def _default_seed_file() -> Path:
    """The repository's `data/` in a checkout; the installed copy (setup.py data_files) else."""
    in_checkout = PACKAGE_DIR.parent / "data" / SEED_FILE_NAME
    installed = Path(sys.prefix) / "share" / "sipipeline" / SEED_FILE_NAME
    return in_checkout if in_checkout.is_file() or not installed.is_file() else installed


DEFAULT_SEED_FILE = _default_seed_file()


def dagster_home() -> Path:
    """DAGSTER_HOME, or `./.dagster_home` so a fresh checkout works without setup."""
    return Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home").resolve()


def storage_base(explicit: str | None = None) -> str:
    """Base of the Parquet store: `explicit` (a `--storage` option), else `$SIPIPELINE_STORAGE`,
    else `$DAGSTER_HOME/sipipeline`.

    A string, because it may be a URL (s3://…, gs://…) handled by universal-pathlib.
    """
    return explicit or os.environ.get(STORAGE_ENV) or str(dagster_home() / "sipipeline")


STORAGE_OPTION_HELP = "storage base (default: $SIPIPELINE_STORAGE, else $DAGSTER_HOME/sipipeline)"


def add_storage_option(parser: argparse.ArgumentParser, help: str = STORAGE_OPTION_HELP) -> None:
    """The `--storage` option the subcommands share (read it with `storage_base(args.storage)`)."""
    parser.add_argument("--storage", help=help)
