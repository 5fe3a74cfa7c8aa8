"""Default round parameters for runs that bring no run config of their own.

Rounds started unattended (next-round sensor, schedule) carry no run config, so their size and
novelty threshold come from the job's default config. A deployment sets them in the code
location's environment (`SIPIPELINE_NUM_PROMPTS`, `SIPIPELINE_SIMILARITY_THRESHOLD`) or, for
the Dagster component, in `defs.yaml`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

NUM_PROMPTS_ENV = "SIPIPELINE_NUM_PROMPTS"
SIMILARITY_THRESHOLD_ENV = "SIPIPELINE_SIMILARITY_THRESHOLD"


class RoundDefaultsError(ValueError):
    """A round default in the environment is not a usable value."""


def round_run_config(num_prompts: int | None = None,
                     similarity_threshold: float | None = None) -> dict:
    """Run config giving the round job these defaults (empty when nothing is set)."""
    generation: dict = {}
    if num_prompts is not None:
        if num_prompts < 1:
            raise RoundDefaultsError(f"num_prompts must be at least 1, not {num_prompts}")
        generation["num_prompts"] = int(num_prompts)
    if similarity_threshold is not None:
        if not 0.0 < similarity_threshold <= 1.0:
            raise RoundDefaultsError(
                f"similarity_threshold must be in (0, 1], not {similarity_threshold}")
        generation["similarity_threshold"] = float(similarity_threshold)
    return {"ops": {"generated_instructions": {"config": generation}}} if generation else {}


def round_run_config_from_env(environ: Mapping[str, str] | None = None) -> dict:
    """`round_run_config` from SIPIPELINE_NUM_PROMPTS and SIPIPELINE_SIMILARITY_THRESHOLD."""
    environ = os.environ if environ is None else environ
    num_prompts = _parsed(environ, NUM_PROMPTS_ENV, int)
    threshold = _parsed(environ, SIMILARITY_THRESHOLD_ENV, float)
    return round_run_config(num_prompts, threshold)


def _parsed(environ: Mapping[str, str], name: str, kind: type):
    raw = (environ.get(name) or "").strip()
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise RoundDefaultsError(f"{name}={raw!r} is not a {kind.__name__}") from None
