"""Keep secrets out of messages: the API key, credentials in a URL, key-shaped strings."""

from __future__ import annotations

import re

REDACTED = "[redacted]"

_SECRET_PATTERN = re.compile(r"(sk|key|api)[-_][A-Za-z0-9_\-*]{6,}", re.IGNORECASE)


def redact(text: str, *secrets: str) -> str:
    """Remove each secret (and anything shaped like an API key) from a message."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _SECRET_PATTERN.sub(REDACTED, text)
