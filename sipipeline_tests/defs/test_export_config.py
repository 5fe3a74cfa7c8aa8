"""The export asset's config takes its format names from the reporting registry."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sipipeline.defs.config import ExportConfig
from sipipeline.reporting.formats import REGISTRY


def test_default_is_every_format_and_the_description_lists_the_registry():
    assert ExportConfig().formats == ["all"]
    description = ExportConfig.model_fields["formats"].description
    assert all(name in description for name in REGISTRY)


def test_unknown_format_is_refused_when_configured():
    assert ExportConfig(formats=["jsonl", "parquet"]).formats == ["jsonl", "parquet"]
    with pytest.raises(ValidationError, match="unknown export format 'csv'"):
        ExportConfig(formats=["csv"])
