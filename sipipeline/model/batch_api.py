"""The Files and Batches endpoints of the OpenAI API, synchronously: few calls, each small.

Batch work is a handful of requests per hour (upload, create, poll, download), so a plain
blocking HTTP client is enough and keeps the batch code free of the event loop. Authorization
is the same as the online transports' (`transports.authorization`): the key or the URL's
credentials go in a header, never in a message.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from typing import Any

from sipipeline.model.config import ModelClientConfig
from sipipeline.model.redaction import redact
from sipipeline.model.transports import authorization, extra_openai_headers, is_loopback
from sipipeline.model.wire import error_body_message

COMPLETION_WINDOW = "24h"


class BatchApiError(Exception):
    """An HTTP error (status, server message) or no answer at all (status 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status
        self.message = message


class BatchApi:
    """Upload a JSONL file, create/retrieve/list/cancel batches, download a file's content."""

    def __init__(self, config: ModelClientConfig, timeout_s: float | None = None) -> None:
        base_url, auth_header = authorization(config)
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": auth_header, "User-Agent": "sipipeline",
                         **extra_openai_headers()}
        self._timeout_s = config.timeout_s if timeout_s is None else timeout_s
        self._secrets = config.secrets()
        handlers = [urllib.request.ProxyHandler({})] if is_loopback(base_url) else []
        self._opener = urllib.request.build_opener(*handlers)

    def upload(self, filename: str, content: bytes) -> dict[str, Any]:
        """POST /files (purpose `batch`) as multipart form data."""
        boundary = uuid.uuid4().hex
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n"
                f"batch\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"{filename}\"\r\nContent-Type: application/jsonl\r\n\r\n")
        payload = head.encode() + content + f"\r\n--{boundary}--\r\n".encode()
        return self._json("POST", "/files", payload,
                          f"multipart/form-data; boundary={boundary}")

    def list_files(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/files?purpose=batch").get("data") or [])

    def create(self, input_file_id: str, endpoint: str, metadata: dict[str, str]
               ) -> dict[str, Any]:
        """POST /batches with the 24 h window; `metadata` lets a restart find the batch."""
        body = {"input_file_id": input_file_id, "endpoint": endpoint,
                "completion_window": COMPLETION_WINDOW, "metadata": metadata}
        return self._json("POST", "/batches", json.dumps(body).encode(), "application/json")

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        return self._json("GET", f"/batches/{batch_id}")

    def list_batches(self, limit: int = 100) -> list[dict[str, Any]]:
        return list(self._json("GET", f"/batches?limit={limit}").get("data") or [])

    def cancel(self, batch_id: str) -> dict[str, Any]:
        return self._json("POST", f"/batches/{batch_id}/cancel", b"{}", "application/json")

    def content(self, file_id: str) -> bytes:
        return self._request("GET", f"/files/{file_id}/content")

    def _json(self, method: str, path: str, payload: bytes | None = None,
              content_type: str | None = None) -> dict[str, Any]:
        raw = self._request(method, path, payload, content_type)
        try:
            data = json.loads(raw)
        except ValueError:
            raise BatchApiError(0, f"{method} {path}: the answer is not JSON") from None
        if not isinstance(data, dict):
            raise BatchApiError(0, f"{method} {path}: the answer is not a JSON object")
        return data

    def _request(self, method: str, path: str, payload: bytes | None = None,
                 content_type: str | None = None) -> bytes:
        headers = dict(self._headers)
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self._base_url + path, data=payload, method=method,
                                         headers=headers)
        try:
            with self._opener.open(request, timeout=self._timeout_s) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            message = redact(error_body_message(error.read()), *self._secrets)
            raise BatchApiError(error.code, message) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise BatchApiError(0, f"{method} {path}: no answer "
                                   f"({type(reason).__name__})") from None
