"""Model-call progress into the run log (every ~10 s and at the end) and to in-process
listeners such as `sipipeline run`'s progress bars."""

from __future__ import annotations

import dagster as dg

from sipipeline.model.progress import (
    LOG_INTERVAL_S,
    ProgressCallback,
    Throttled,
    broadcast,
    fan_out,
    format_progress,
)


def stage_progress(context: dg.AssetExecutionContext | None = None,
                   interval_s: float = LOG_INTERVAL_S) -> ProgressCallback:
    """The progress callback of the asset being materialized (the current one by default)."""
    context = context or dg.AssetExecutionContext.get()
    partition = context.partition_key if context.has_partition_key else None

    def log(progress) -> None:
        prefix = f"{partition} " if partition else ""
        context.log.info(f"{prefix}progress {format_progress(progress)}")

    return fan_out(Throttled(log, interval_s), broadcast)
