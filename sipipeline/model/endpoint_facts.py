"""What a client learnt about an endpoint, kept in the journal's database for the next client.

The request field an endpoint wants for the token limit, and whether it rejects
`response_format`. A client that was told (by a 400 answer) to use `max_completion_tokens`,
or that structured output is not supported, records it here, so no later client on the same
journal pays for the same rejected request again.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

TOKEN_LIMIT_FIELD = "token_limit_field"
RESPONSE_FORMAT = "response_format"
UNSUPPORTED = "unsupported"


class EndpointFacts:
    """A small key-value table next to the journal's samples: (endpoint, model, name) -> value."""

    def __init__(self, path: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=60, check_same_thread=False,
                                   isolation_level=None)
        self._db.execute(
            """CREATE TABLE IF NOT EXISTS endpoint_facts (
                endpoint TEXT NOT NULL,
                model TEXT NOT NULL,
                name TEXT NOT NULL,
                value TEXT NOT NULL,
                learnt_at REAL NOT NULL,
                PRIMARY KEY (endpoint, model, name))""")

    def get(self, endpoint: str, model: str, name: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM endpoint_facts WHERE endpoint=? AND model=? AND name=?",
                (endpoint, model, name)).fetchone()
        return row[0] if row else None

    def put(self, endpoint: str, model: str, name: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO endpoint_facts VALUES (?,?,?,?,?)",
                             (endpoint, model, name, value, time.time()))

    def close(self) -> None:
        with self._lock:
            self._db.close()
