"""Secrets never reach a message."""

from __future__ import annotations

from sipipeline.model.redaction import redact


def test_redact() -> None:
    assert "0123456789abcdef" not in redact("Incorrect key sk-0123456789abcdef", "")
    assert redact("my secret here", "secret") == "my [redacted] here"


def test_url_credentials_are_split_and_redacted() -> None:
    from sipipeline.model.redaction import split_credentials

    split = split_credentials("http://al%40ice:p%2Fw@host:8000/v1")
    assert split == ("http://host:8000/v1", "al@ice", "p/w")
    assert "p/w" in split.secrets() and "p%2Fw" in split.secrets()
    assert split_credentials("https://api.openai.com/v1").present() is False
    message = "cannot reach http://bob:hunter2@proxy:8080/v1 (refused)"
    assert redact(message) == "cannot reach http://[redacted]@proxy:8080/v1 (refused)"
    assert "hunter2" not in redact("password hunter2 was wrong", *split_credentials(
        "http://bob:hunter2@proxy/v1").secrets())
