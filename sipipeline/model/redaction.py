"""Keep secrets out of messages: the API key, credentials in a URL, key-shaped strings.

An endpoint URL may carry credentials (`http://user:password@host/v1`, a basic-auth proxy in
front of a model server). They are secrets like the key: the transports send them as an
`Authorization` header from a credential-free URL, journal keys name the endpoint without
them, and every message passes through `redact`.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import quote, unquote, urlsplit, urlunsplit

REDACTED = "[redacted]"

_SECRET_PATTERN = re.compile(r"(sk|key|api)[-_][A-Za-z0-9_\-*]{6,}", re.IGNORECASE)
# The userinfo of any URL in a message: scheme://<userinfo>@host
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/?#@\s]+@")


class UrlCredentials(NamedTuple):
    """A URL split into its credential-free form and the (decoded) credentials it carried."""

    url: str
    username: str
    password: str

    def present(self) -> bool:
        return bool(self.username or self.password)

    def secrets(self) -> tuple[str, ...]:
        """Every spelling of the credentials that could end up in a message."""
        if not self.present():
            return ()
        forms = {self.password, quote(self.password, safe=""),
                 f"{self.username}:{self.password}",
                 f"{quote(self.username, safe='')}:{quote(self.password, safe='')}"}
        return tuple(f for f in forms if f and f != ":")


def split_credentials(url: str) -> UrlCredentials:
    """`url` without its userinfo, and the username and password it held."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return UrlCredentials(url, "", "")
    userinfo, _, hostport = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return UrlCredentials(clean, unquote(username), unquote(password))


def redact(text: str, *secrets: str) -> str:
    """Remove each secret, URL credentials and anything shaped like an API key from a message."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    return _SECRET_PATTERN.sub(REDACTED, text)
