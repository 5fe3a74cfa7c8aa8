"""A fake OpenAI Files + Batches API on 127.0.0.1, with scripted batch lives.

Each created batch follows a `BatchScript`: its statuses, one per retrieve (validating ->
in_progress -> finalizing -> completed by default), and how it ends: completed, expired with
part of its output, failed with errors (e.g. the enqueued-token limit, only visible on
retrieve), with some lines in the error file, with some lines missing from the output, or
held in progress until `release_batches()`. A 404 for a file just uploaded, cancel, and holds
at each phase (the request is handled, its answer withheld until `release()`) for kill tests
are supported. Answers come from the same responder as the online fake server, so a batch
round and an online round see the same model. `submitted` counts every request line of every
created batch by custom_id: a request paid twice shows up as a count of 2.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sipipeline_tests.support.fake_openai_server import (
    _count_tokens,
    default_responder,
    prompt_text_of,
)

Responder = Callable[[str, dict, int], tuple[str, str]]
TOKEN_LIMIT_ERROR = {"code": "token_limit_exceeded",
                     "message": "Enqueued token limit reached for fake-model in organization "
                                "org-test. Limit: 90,000 enqueued tokens."}


@dataclass
class BatchScript:
    """The life of one batch: statuses shown on successive retrieves, and how it ends."""

    states: Sequence[str] = ("validating", "in_progress", "finalizing")
    end: str = "completed"  # completed | expired | failed
    answered_fraction: float = 1.0  # expired: the share of lines that got an answer
    errors: Sequence[dict] = ()  # failed: the batch's errors
    error_lines: Sequence[int] = ()  # line numbers answered in the error file
    omitted_lines: Sequence[int] = ()  # line numbers missing from both files
    hold: bool = False  # stay in_progress until `release_batches()`
    #: Like OpenAI: lines an expired or cancelled batch did not run appear in the error file
    #: (`batch_expired` / `batch_cancelled`) instead of being absent.
    unfinished_as_errors: bool = False


@dataclass
class _Batch:
    data: dict[str, Any]
    script: BatchScript
    lines: list[dict]
    step: int = 0


@dataclass
class FakeBatchServer:
    responder: Responder = default_responder
    scripts: list[BatchScript] = field(default_factory=list)  # used in order, then default
    not_found_after_upload: int = 0  # how many times a new file is unknown to POST /batches
    #: Requests whose answer is withheld until `release()`: before_upload (not stored yet),
    #: upload (stored), before_create (not created), create (created), retrieve, content.
    holds: set[str] = field(default_factory=set)
    #: Answer lines asking with `max_tokens` with OpenAI's 400 for newer models.
    reject_max_tokens: bool = False

    def __post_init__(self) -> None:
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, _Batch] = {}
        self.submitted: Counter[str] = Counter()
        self.request_log: list[tuple[str, str]] = []
        self.held = 0
        self._lock = threading.RLock()
        self._release = threading.Event()
        self._batches_released = False
        self._server: ThreadingHTTPServer | None = None

    # ----------------------------------------------------------------- control
    def start(self) -> FakeBatchServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server._dispatch(self, "GET", b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                server._dispatch(self, "POST", self.rfile.read(length))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeBatchServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def release(self) -> None:
        """Answer every held request, and hold nothing from now on."""
        self.holds = set()
        self._release.set()

    def release_batches(self) -> None:
        """Let batches scripted to hold in progress go on to their end."""
        self._batches_released = True

    def states(self) -> list[str]:
        with self._lock:
            return [b.data["status"] for b in self.batches.values()]

    # ----------------------------------------------------------------- HTTP
    def _hold(self) -> None:
        with self._lock:
            self.held += 1
        self._release.wait()

    def _dispatch(self, handler: BaseHTTPRequestHandler, method: str, body: bytes) -> None:
        path = handler.path
        with self._lock:
            self.request_log.append((method, path))
        route = path.split("?")[0].removeprefix("/v1")
        before = {("POST", "/files"): "before_upload", ("POST", "/batches"): "before_create"}
        if before.get((method, route)) in self.holds:
            self._hold()
        try:
            status, payload, phase = self._route(method, route, path, body, handler)
        except KeyError:
            status, payload, phase = 404, _error("No such object", "not_found"), None
        if phase in self.holds:
            self._hold()
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            pass

    def _route(self, method: str, route: str, path: str, body: bytes,
               handler: BaseHTTPRequestHandler) -> tuple[int, Any, str | None]:
        with self._lock:
            if method == "POST" and route == "/files":
                return 200, self._upload(body, handler.headers.get("Content-Type", "")), "upload"
            if method == "GET" and route == "/files":
                return 200, {"object": "list", "data": [
                    {k: v for k, v in f.items() if k != "content"}
                    for f in self.files.values()]}, None
            match = re.fullmatch(r"/files/([\w-]+)/content", route)
            if method == "GET" and match:
                return 200, self.files[match.group(1)]["content"], "content"
            if method == "POST" and route == "/batches":
                return self._create(json.loads(body))
            if method == "GET" and route == "/batches":
                newest = sorted(self.batches.values(), key=lambda b: -b.data["created_at"])
                return 200, {"object": "list", "data": [b.data for b in newest]}, None
            match = re.fullmatch(r"/batches/([\w-]+)(/cancel)?", route)
            if match and method == "GET":
                return 200, self._retrieve(match.group(1)), "retrieve"
            if match and method == "POST" and match.group(2):
                batch = self.batches[match.group(1)]
                if batch.data["status"] not in ("completed", "expired", "failed", "cancelled"):
                    batch.data["status"] = "cancelling"
                return 200, batch.data, None
        return 404, _error(f"unknown path {path}", "not_found"), None

    def _upload(self, body: bytes, content_type: str) -> dict[str, Any]:
        boundary = content_type.split("boundary=")[-1].encode()
        parts = body.split(b"--" + boundary)
        content, filename = b"", ""
        for part in parts:
            head, _, rest = part.partition(b"\r\n\r\n")
            if b'name="file"' in head:
                filename = re.search(rb'filename="([^"]*)"', head).group(1).decode()
                content = rest.removesuffix(b"\r\n")
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = {"id": file_id, "object": "file", "purpose": "batch",
                               "filename": filename, "bytes": len(content),
                               "created_at": int(time.time()), "content": content,
                               "unknown_for": self.not_found_after_upload}
        return {k: v for k, v in self.files[file_id].items()
                if k not in ("content", "unknown_for")}

    def _create(self, body: dict) -> tuple[int, Any, str | None]:
        file = self.files.get(body.get("input_file_id", ""))
        if file is None or file["unknown_for"] > 0:
            if file is not None:
                file["unknown_for"] -= 1
            return 404, _error("File not found", "not_found"), None
        lines = [json.loads(raw) for raw in file["content"].decode().splitlines() if raw]
        self.submitted.update(line["custom_id"] for line in lines)
        batch_id = f"batch_{len(self.batches) + 1}"
        script = self.scripts.pop(0) if self.scripts else BatchScript()
        data = {"id": batch_id, "object": "batch", "endpoint": body["endpoint"],
                "input_file_id": file["id"], "completion_window": body["completion_window"],
                "status": script.states[0] if script.states else "validating",
                "output_file_id": None, "error_file_id": None, "errors": None,
                "created_at": time.time() + len(self.batches) * 1e-6,
                "metadata": body.get("metadata") or {},
                "request_counts": {"total": len(lines), "completed": 0, "failed": 0}}
        self.batches[batch_id] = _Batch(data, script, lines)
        return 200, data, "create"

    def _retrieve(self, batch_id: str) -> dict[str, Any]:
        batch = self.batches[batch_id]
        data = batch.data
        if data["status"] in ("completed", "expired", "failed", "cancelled"):
            return data
        if data["status"] == "cancelling":
            self._finish(batch, "cancelled", answered=0)
            return data
        batch.step += 1
        script = batch.script
        if script.hold and not self._batches_released:
            data["status"] = "in_progress"
        elif batch.step < len(script.states):
            data["status"] = script.states[batch.step]
        elif script.end == "failed":
            data["status"] = "failed"
            data["errors"] = {"object": "list", "data": list(script.errors)}
        else:
            share = script.answered_fraction if script.end == "expired" else 1.0
            self._finish(batch, script.end, answered=round(len(batch.lines) * share))
        return data

    def _finish(self, batch: _Batch, status: str, answered: int) -> None:
        out, errors = [], []
        for number, line in enumerate(batch.lines[:answered]):
            if number in batch.script.omitted_lines:
                continue
            if self.reject_max_tokens and "max_tokens" in line["body"]:
                errors.append({"id": f"req_{number}", "custom_id": line["custom_id"],
                               "response": {"status_code": 400, "body": {"error": {
                                   "message": "Unsupported parameter: 'max_tokens' is not "
                                   "supported with this model. Use 'max_completion_tokens' "
                                   "instead.", "type": "invalid_request_error"}}},
                               "error": None})
                continue
            if number in batch.script.error_lines:
                errors.append({"id": f"req_{number}", "custom_id": line["custom_id"],
                               "response": {"status_code": 500, "body": {"error": {
                                   "message": "The server had an error", "type": "server"}}},
                               "error": None})
                continue
            out.append({"id": f"req_{number}", "custom_id": line["custom_id"],
                        "response": {"status_code": 200, "request_id": f"r{number}",
                                     "body": self._answer(line)}, "error": None})
        if batch.script.unfinished_as_errors:
            code = "batch_cancelled" if status == "cancelled" else "batch_expired"
            errors += [{"id": f"req_{answered + k}", "custom_id": line["custom_id"],
                        "response": None, "error": {"code": code, "message": f"This request "
                                                    f"could not be executed ({code})."}}
                       for k, line in enumerate(batch.lines[answered:])]
        data = batch.data
        data["status"] = status
        data["request_counts"] = {"total": len(batch.lines), "completed": len(out),
                                  "failed": len(errors)}
        data["output_file_id"] = self._store(batch, "output", out) if out else None
        data["error_file_id"] = self._store(batch, "errors", errors) if errors else None

    def _store(self, batch: _Batch, kind: str, lines: list[dict]) -> str:
        file_id = f"file-{len(self.files) + 1}"
        content = "".join(json.dumps(line) + "\n" for line in lines).encode()
        self.files[file_id] = {"id": file_id, "object": "file", "purpose": "batch_output",
                               "filename": f"{batch.data['id']}_{kind}.jsonl",
                               "bytes": len(content), "created_at": int(time.time()),
                               "content": content, "unknown_for": 0}
        return file_id

    def _answer(self, line: dict) -> dict[str, Any]:
        url, body = line["url"], line["body"]
        is_chat = url.endswith("/chat/completions")
        prompt_text = prompt_text_of(url, body)
        choices, completion_tokens = [], 0
        for index in range(int(body.get("n") or 1)):
            text, finish = self.responder(prompt_text, body, index)
            completion_tokens += _count_tokens(text)
            choice = {"index": index, "finish_reason": finish, "logprobs": None}
            if is_chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            choices.append(choice)
        prompt_tokens = _count_tokens(prompt_text)
        return {"id": f"cmpl-{line['custom_id'][:12]}", "object": "text_completion",
                "model": body.get("model", ""), "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}


def _error(message: str, code: str) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error", "code": code}}
