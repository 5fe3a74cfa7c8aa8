"""Bootstrap rounds as one dynamic partition set shared by every round asset."""

from __future__ import annotations

import re

import dagster as dg

bootstrap_rounds = dg.DynamicPartitionsDefinition(name="bootstrap_round")

_ROUND_KEY = re.compile(r"round_(\d{3,})")


class RoundKeyError(ValueError):
    """A partition key that is not a bootstrap round."""


def round_key(number: int) -> str:
    """`round_001`, … — zero-padded so text order is round order."""
    if number < 1:
        raise RoundKeyError(f"round numbers start at 1, got {number}")
    return f"round_{number:03d}"


def round_number(key: str) -> int:
    match = _ROUND_KEY.fullmatch(key)
    if not match:
        raise RoundKeyError(
            f"'{key}' is not a bootstrap round key; expected round_001, round_002, …"
        )
    return int(match.group(1))


def previous_round_key(key: str) -> str | None:
    number = round_number(key)
    return round_key(number - 1) if number > 1 else None


def next_round_key(key: str) -> str:
    return round_key(round_number(key) + 1)


def ensure_round_partition(instance: dg.DagsterInstance, key: str) -> None:
    """Add a round's partition unless it exists (re-running a round, or two starters, adds it
    once)."""
    if not instance.has_dynamic_partition(bootstrap_rounds.name, key):
        instance.add_dynamic_partitions(bootstrap_rounds.name, [key])
