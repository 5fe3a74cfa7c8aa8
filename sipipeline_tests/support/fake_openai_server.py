"""A fake OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks.

Real HTTP over a real socket (asyncio on one thread, HTTP/1.1 keep-alive), so the client
code under test runs exactly as it would against a remote endpoint. It answers
`/v1/completions`, `/v1/chat/completions` and `/v1/models`, supports `n>1` and usage numbers,
and injects faults on request: 429 with Retry-After, 500, slow answers past the client's
timeout, malformed JSON, choices without usable text (missing, null, a number, or empty with no
finish_reason; well-formed JSON that is still no answer), truncated (`finish_reason="length"`)
completions, 401, and "hold"
(the request waits until `release_held()` or `stop()`; used to kill a client deterministically
while requests are in flight).

Every request is recorded in `request_log` with whether its answer was a paid one, i.e. a
well-formed 200 completion that reached the client (a client that has gone away before the
answer is written — timed out or killed — is detected and not counted as paid).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

Responder = Callable[[str, dict, int], tuple[str, str]]

#: Faults whose answer carries no usable completion: the client must not count it as one.
TEXTLESS_FAULTS = ("no_text", "null_text", "numeric_text", "empty_text_no_reason")
UNPAID_FAULTS = ("malformed", *TEXTLESS_FAULTS)


@dataclass(frozen=True)
class Fault:
    """One injected fault.

    kind: "429", "500", "400", "401", "slow", "malformed", "truncated", "hold",
    "max_tokens_unsupported" (OpenAI's 400 for a model that wants max_completion_tokens;
    see `rejects_max_tokens`), "response_format_unsupported" (a 400 for structured output;
    see `rejects_response_format`), one of
    TEXTLESS_FAULTS (every choice loses its text that way), "first_choice_textless" (only
    choice 0 has no text), or "empty_text" (a legitimate empty completion: "" with
    finish_reason "stop").
    retry_after_s: Retry-After sent with a 429 (also as `retry-after-ms`).
    delay_s: how long a "slow" answer takes before it is written.
    """

    kind: str
    retry_after_s: float = 0.05
    delay_s: float = 2.0


FaultSpec = Fault | str | None
FaultPlan = Sequence[FaultSpec] | Callable[[int, dict], FaultSpec] | None


MAX_TOKENS_UNSUPPORTED = ("Unsupported parameter: 'max_tokens' is not supported with this "
                          "model. Use 'max_completion_tokens' instead.")


RESPONSE_FORMAT_UNSUPPORTED = ("Invalid parameter: 'response_format' of type 'json_schema' is "
                               "not supported with this model.")


def rejects_response_format(number: int, body: dict) -> FaultSpec:
    """A fault plan: every request that asks for structured output is rejected."""
    return "response_format_unsupported" if "response_format" in body else None


def rejects_max_tokens(number: int, body: dict) -> FaultSpec:
    """A fault plan: every request that carries `max_tokens` is rejected, as newer OpenAI
    models do."""
    return "max_tokens_unsupported" if "max_tokens" in body else None


def _as_fault(spec: FaultSpec) -> Fault | None:
    if spec is None or isinstance(spec, Fault):
        return spec
    return Fault(kind=spec)


def default_responder(prompt_text: str, body: dict, sample_index: int) -> tuple[str, str]:
    """A deterministic answer that depends on the prompt and the sample index."""
    digest = hashlib.sha256(prompt_text.encode("utf-8")).hexdigest()[:12]
    return f" answer {digest} sample {sample_index}", "stop"


def prompt_text_of(path: str, body: dict) -> str:
    """The prompt as the responder sees it: the message contents joined for chat requests."""
    if path.endswith("/chat/completions"):
        return "\n".join(str(m.get("content") or "") for m in body.get("messages", []))
    prompt = body.get("prompt", "")
    return prompt if isinstance(prompt, str) else json.dumps(prompt)


def _count_tokens(text: str) -> int:
    return len(text.split())


class FakeOpenAIServer:
    """Context manager (or `.start()` / `.stop()`) running the fake endpoint on its own thread.

    An asyncio server: thousands of concurrent connections cost one thread, so the server
    itself is never the bottleneck of a throughput benchmark.
    """

    def __init__(
        self,
        responder: Responder | None = None,
        latency_s: float = 0.0,
        faults: FaultPlan = None,
        model_ids: Iterable[str] = ("fake-model",),
        require_api_key: str | None = None,
        max_choices: int | None = None,
        require_basic_auth: tuple[str, str] | None = None,
    ) -> None:
        """max_choices: answer at most this many choices whatever `n` asks (endpoints that
        ignore n); require_api_key: answer 401 unless this bearer token is sent;
        require_basic_auth: (user, password) a basic-auth proxy in front of the model wants,
        else 401."""
        self.responder: Responder = responder or default_responder
        self.max_choices = max_choices
        self.latency_s = latency_s
        self.model_ids = list(model_ids)
        self.require_api_key = require_api_key
        self.require_basic_auth = require_basic_auth
        self.request_log: list[dict[str, Any]] = []
        self._faults = faults
        self._completion_count = 0
        self._active = 0
        self._held = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._release: asyncio.Event | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task] = set()
        self.base_url = ""

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> FakeOpenAIServer:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, daemon=True,
                                        name="fake-openai-server")
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._listen(), loop).result(timeout=10)
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def _listen(self) -> int:
        self._release = asyncio.Event()
        self._server = await asyncio.start_server(self._serve_connection, "127.0.0.1", 0,
                                                  backlog=1024)
        return self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        self._stopping = True

        async def shut() -> None:
            self._release.set()
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.sleep(0)

        try:
            asyncio.run_coroutine_threadsafe(shut(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout=10)
            loop.close()
            self._loop = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- controls
    def release_held(self) -> None:
        """Let every request held by a "hold" fault (and later ones) be answered."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._release.set)

    def wait_idle(self, timeout_s: float = 10.0, *, include_held: bool = True) -> bool:
        """Wait until no request is being handled (slow or held ones have been logged).

        The log views call this with `include_held=False` first, so that an answer the client
        has already received is always in the log, whatever the thread timing.
        """
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._active - (0 if include_held else self._held) > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def held_count(self) -> int:
        """Requests now waiting in a "hold" fault."""
        with self._lock:
            return self._held

    def set_faults(self, faults: FaultPlan) -> None:
        """Replace the fault plan; request numbering restarts at 0."""
        with self._lock:
            self._faults = faults
            self._completion_count = 0

    # ----------------------------------------------------------------- log views
    def completion_log(self) -> list[dict[str, Any]]:
        """Log entries of completion requests (chat or text)."""
        self.wait_idle(5.0, include_held=False)
        with self._lock:
            return [e for e in self.request_log if e["path"].endswith("completions")]

    def paid_log(self) -> list[dict[str, Any]]:
        """Completion requests whose well-formed 200 answer reached the client."""
        return [e for e in self.completion_log() if e["paid"]]

    @staticmethod
    def request_identity(entry: dict[str, Any]) -> str:
        """A canonical form of a logged request body, to spot duplicates."""
        return json.dumps(entry["body"], sort_keys=True)

    # ----------------------------------------------------------------- internals
    def _next_fault(self, body: dict) -> Fault | None:
        with self._lock:
            number = self._completion_count
            self._completion_count += 1
            plan = self._faults
        if plan is None:
            return None
        if callable(plan):
            return _as_fault(plan(number, body))
        return _as_fault(plan[number]) if number < len(plan) else None

    async def _serve_connection(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        connection = _Connection(reader, writer)
        try:
            while not self._stopping:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                        ConnectionError):
                    return
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                raw = await reader.readexactly(length) if length else b""
                with self._lock:
                    self._active += 1
                entry: dict[str, Any] = {"path": path, "body": None, "status": None,
                                         "fault": None, "paid": False, "time": time.time(),
                                         "delivered": False}
                try:
                    if method == "GET":
                        await self._handle_get(path, entry, connection)
                    else:
                        try:
                            entry["body"] = json.loads(raw) if raw else {}
                        except ValueError:
                            entry["body"] = {"_raw": raw.decode("utf-8", "replace")}
                        await self._handle_post(path, headers, entry["body"], entry,
                                                connection)
                finally:
                    with self._idle:
                        self.request_log.append(entry)
                        self._active -= 1
                        self._idle.notify_all()
                if connection.closed or headers.get("connection", "").lower() == "close":
                    return
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _handle_get(self, path: str, entry: dict[str, Any],
                          connection: _Connection) -> None:
        if path.rstrip("/").endswith("/models"):
            entry["status"] = 200
            data = {"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                for m in self.model_ids]}
            entry["delivered"] = await connection.send_json(200, data)
        else:
            entry["status"] = 404
            await connection.send_json(404, _error("not found", "not_found"))

    async def _handle_post(self, path: str, headers: dict[str, str], body: dict,
                           entry: dict[str, Any], connection: _Connection) -> None:
        is_chat = path.endswith("/chat/completions")
        if not (is_chat or path.endswith("/completions")):
            entry["status"] = 404
            await connection.send_json(404, _error("unknown path", "not_found"))
            return
        authorization = headers.get("authorization", "")
        entry["auth_scheme"] = authorization.split(" ", 1)[0]
        expected_auth = f"Bearer {self.require_api_key}"
        if self.require_api_key is not None and authorization != expected_auth:
            entry["status"] = 401
            await connection.send_json(401, _error("Incorrect API key provided.",
                                                   "invalid_api_key"))
            return
        if self.require_basic_auth is not None and authorization != _basic(
                *self.require_basic_auth):
            entry["status"] = 401
            await connection.send_json(401, _error("Authentication required.",
                                                   "unauthorized"))
            return
        fault = self._next_fault(body)
        entry["fault"] = fault.kind if fault else None
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        kind = fault.kind if fault else None
        if kind == "hold":
            with self._idle:
                self._held += 1
                self._idle.notify_all()
            try:
                await self._release.wait()
            finally:
                with self._lock:
                    self._held -= 1
            if self._stopping:
                entry["status"] = 503
                entry["fault"] = "hold_abandoned"
                return
        if kind == "429":
            entry["status"] = 429
            retry_headers = {"Retry-After": str(max(1, round(fault.retry_after_s))),
                             "retry-after-ms": str(int(fault.retry_after_s * 1000))}
            await connection.send_json(429, _error("Rate limit reached.", "rate_limit_exceeded"),
                                       retry_headers)
            return
        if kind == "500":
            entry["status"] = 500
            await connection.send_json(500, _error("The server had an error.", "server_error"))
            return
        if kind == "400":
            entry["status"] = 400
            await connection.send_json(400, _error(
                "This model's maximum context length is 4097 tokens.",
                "context_length_exceeded"))
            return
        if kind == "response_format_unsupported":
            entry["status"] = 400
            await connection.send_json(400, _error(RESPONSE_FORMAT_UNSUPPORTED,
                                                   "invalid_request_error"))
            return
        if kind == "max_tokens_unsupported":
            entry["status"] = 400
            await connection.send_json(400, _error(MAX_TOKENS_UNSUPPORTED,
                                                   "unsupported_parameter"))
            return
        if kind == "401":
            entry["status"] = 401
            await connection.send_json(401, _error("Incorrect API key provided.",
                                                   "invalid_api_key"))
            return
        if kind == "slow":
            await asyncio.sleep(fault.delay_s)
        if kind == "malformed":
            entry["status"] = 200
            payload = b'{"id": "cmpl-broken", "choices": [{"text": "unterminated'
            entry["delivered"] = await connection.send(200, payload)
            return

        prompt_text = prompt_text_of(path, body)
        n = int(body.get("n") or 1)
        if self.max_choices is not None:
            n = min(n, self.max_choices)
        choices = []
        completion_tokens = 0
        for index in range(n):
            text, finish_reason = self.responder(prompt_text, body, index)
            if kind == "truncated":
                text, finish_reason = text[: max(1, len(text) // 2)], "length"
            if kind == "empty_text":
                text, finish_reason = "", "stop"
            completion_tokens += _count_tokens(text)
            if is_chat:
                choices.append({"index": index, "finish_reason": finish_reason, "logprobs": None,
                                "message": {"role": "assistant", "content": text}})
            else:
                choices.append({"index": index, "finish_reason": finish_reason, "logprobs": None,
                                "text": text})
            if kind in TEXTLESS_FAULTS or (kind == "first_choice_textless" and index == 0):
                _spoil_text(choices[-1], kind, is_chat)
        prompt_tokens = _count_tokens(prompt_text)
        data = {
            "id": f"cmpl-{len(self.request_log)}-{int(entry['time'] * 1e6)}",
            "object": "chat.completion" if is_chat else "text_completion",
            "created": int(entry["time"]),
            "model": body.get("model", ""),
            "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens,
                      "prompt_tokens_details": {"cached_tokens": 0}},
        }
        entry["status"] = 200
        entry["delivered"] = await connection.send_json(200, data)
        entry["paid"] = entry["delivered"] and entry["fault"] not in UNPAID_FAULTS


class _Connection:
    """Writes HTTP/1.1 responses, refusing to when the client has already gone away."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.closed = False

    def client_gone(self) -> bool:
        """True when the client closed its end (timed out or was killed)."""
        return (self.reader.at_eof() or self.reader.exception() is not None
                or self.writer.is_closing())

    async def send_json(self, status: int, data: dict,
                        headers: dict[str, str] | None = None) -> bool:
        return await self.send(status, json.dumps(data).encode("utf-8"), headers)

    async def send(self, status: int, payload: bytes,
                   headers: dict[str, str] | None = None) -> bool:
        if self.client_gone():
            self.closed = True
            return False
        lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
                 "Content-Type: application/json", f"Content-Length: {len(payload)}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        try:
            self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
            await self.writer.drain()
            return True
        except ConnectionError:
            self.closed = True
            return False


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _spoil_text(choice: dict, kind: str, is_chat: bool) -> None:
    """Make one choice's text unusable in the way `kind` names."""
    holder = choice["message"] if is_chat else choice
    field = "content" if is_chat else "text"
    if kind in ("no_text", "first_choice_textless"):
        del holder[field]
    elif kind == "null_text":
        holder[field] = None
    elif kind == "numeric_text":
        holder[field] = 42
    else:  # empty_text_no_reason
        holder[field] = ""
        choice["finish_reason"] = None


def _error(message: str, code: str) -> dict:
    return {"error": {"message": message, "type": code, "param": None, "code": code}}


def main() -> None:
    """Run a fake server until stdin closes (`python -m` this module).

    Prints the base URL on the first line, so benchmarks can run it in another process.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    args = parser.parse_args()
    with FakeOpenAIServer(latency_s=args.latency) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
