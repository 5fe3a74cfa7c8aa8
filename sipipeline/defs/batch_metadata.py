"""Asset metadata of batch delivery: progress per batch state, what was paid, what online
would have cost."""

from __future__ import annotations

import dagster as dg

from sipipeline.model.batch import BatchesPendingError, BatchModelClient
from sipipeline.model.client import ModelClient


def progress_metadata(progress: dict) -> dict[str, dg.MetadataValue]:
    """Samples done / total, and requests per batch state (validating, in_progress, ...)."""
    if not progress:
        return {}
    metadata = {"batch/samples_done": dg.MetadataValue.int(int(progress["requests_done"])),
                "batch/samples_total": dg.MetadataValue.int(int(progress["requests_total"]))}
    for state, count in sorted(progress.get("by_state", {}).items()):
        metadata[f"batch/requests_{state}"] = dg.MetadataValue.int(int(count))
    return metadata


def batch_metadata(client: ModelClient, purpose: str) -> dict[str, dg.MetadataValue]:
    """Batch facts of a finished step: paid (half price) and online-equivalent cost."""
    if not isinstance(client, BatchModelClient):
        return {}
    paid = client.usage(purpose).cost_usd
    online = client.online_equivalent_usd(purpose)
    return {"llm/delivery": dg.MetadataValue.text("batch"),
            "llm/paid_usd": dg.MetadataValue.float(paid),
            "llm/online_equivalent_usd": dg.MetadataValue.float(online),
            "llm/batch_savings_usd": dg.MetadataValue.float(online - paid),
            **progress_metadata(client.batch_progress(purpose))}


def failure_metadata(error: Exception) -> dict[str, dg.MetadataValue]:
    """Metadata of a step that ended with batches pending: how far they got."""
    if isinstance(error, BatchesPendingError):
        return {"batch/pending": dg.MetadataValue.bool(True),
                **progress_metadata(error.progress)}
    return {}
