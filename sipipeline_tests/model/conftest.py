"""Fixtures of the model-layer tests."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["aiohttp", "openai"])
def transport(request) -> str:
    """Both HTTP transports must behave the same."""
    return request.param
