"""Secrets never reach a message."""

from __future__ import annotations

from sipipeline.model.redaction import redact


def test_redact() -> None:
    assert "0123456789abcdef" not in redact("Incorrect key sk-0123456789abcdef", "")
    assert redact("my secret here", "secret") == "my [redacted] here"
