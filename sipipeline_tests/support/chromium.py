"""Headless Chromium (Debian's `chromium` package) driven over the DevTools protocol.

A minimal client on `websockets`' synchronous API (installed with dagster-webserver's
`uvicorn[standard]`): open a page, wait until its visible text shows what a person would look
for, read that text, save a PNG. The browser never downloads anything: it is the system binary,
started with its own temporary profile, background networking off and a dead proxy for
anything that is not loopback, so pages can reach 127.0.0.1 and nothing else.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sipipeline_tests.support.process_groups import stop_process_group

BROWSER_NAMES = ("chromium", "chromium-browser")


class BrowserError(RuntimeError):
    """The browser did not start, or a page did not show what was expected in time."""


def find_chromium() -> str | None:
    """Path of the system Chromium, or None when it is not installed."""
    override = os.environ.get("SIPIPELINE_CHROMIUM")
    if override:
        return override if Path(override).exists() else None
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium_unavailable_reason() -> str | None:
    """Why the browser part cannot run here, or None when it can."""
    binary = find_chromium()
    if binary is None:
        return ("Chromium is not installed (Debian package 'chromium'; `.ci/run` installs it "
                "with apt-get when it can)")
    try:
        version = subprocess.run([binary, "--version"], capture_output=True, text=True,
                                 timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"Chromium at {binary} does not run: {error}"
    if version.returncode != 0:
        return f"Chromium at {binary} does not run: {version.stderr.strip()[:300]}"
    try:
        import websockets.sync.client  # noqa: F401
    except ImportError:
        return "the 'websockets' package is missing (it comes with dagster-webserver)"
    return None


class Chromium:
    """One headless browser process with one page."""

    def __init__(self, width: int = 1600, height: int = 1000) -> None:
        self.width, self.height = width, height
        self.binary = find_chromium()
        if self.binary is None:
            raise BrowserError("Chromium is not installed")
        self.profile = Path(tempfile.mkdtemp(prefix="sipipeline-chromium-"))
        self.process: subprocess.Popen | None = None
        self._socket = None
        self._exit_stack = contextlib.ExitStack()
        self._next_id = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout_s: float = 60.0) -> Chromium:
        command = [
            self.binary, "--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-default-apps", "--disable-extensions",
            "--disable-domain-reliability", "--metrics-recording-only",
            "--proxy-server=http://127.0.0.1:9", "--remote-allow-origins=*",
            "--hide-scrollbars", f"--window-size={self.width},{self.height}",
            "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
            f"--user-data-dir={self.profile}", "about:blank",
        ]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_s
        while not port_file.exists() or not port_file.read_text().strip():
            if self.process.poll() is not None:
                raise BrowserError(f"Chromium exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise BrowserError(f"Chromium did not open DevTools in {timeout_s}s")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        page_socket = None
        while page_socket is None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                pages = [t for t in json.loads(r.read()) if t.get("type") == "page"]
            if pages:
                page_socket = pages[0]["webSocketDebuggerUrl"]
            elif time.monotonic() > deadline:
                raise BrowserError("Chromium has no page target")
            else:
                time.sleep(0.1)
        from websockets.sync.client import connect

        self._socket = self._exit_stack.enter_context(
            connect(page_socket, max_size=64 * 1024 * 1024, open_timeout=30))
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)
        return self

    def stop(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(Exception):  # closing a socket to a dying browser
                self._exit_stack.close()
            self._socket = None
        stop_process_group(self.process, signal.SIGTERM, timeout_s=10)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ protocol
    def call(self, method: str, timeout_s: float = 60.0, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result (events in between are skipped)."""
        self._next_id += 1
        message_id = self._next_id
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError(f"{method} got no answer in {timeout_s}s")
            message = json.loads(self._socket.recv(timeout=remaining))
            if message.get("id") == message_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"script failed: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    # ------------------------------------------------------------------ what a person does
    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_for_text(self, expected: Iterable[str], timeout_s: float = 60.0,
                      settle_s: float = 1.0) -> str:
        """Wait until the page's visible text contains every expected string; return it."""
        expected = list(expected)
        deadline = time.monotonic() + timeout_s
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if all(item in text for item in expected):
                time.sleep(settle_s)  # let late layout (graph edges, icons) finish
                return self.text()
            time.sleep(0.5)
        missing = [item for item in expected if item not in text]
        raise BrowserError(f"page never showed {missing} in {timeout_s}s; it showed:\n"
                           f"{text[:3000]}")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png",
                         captureBeyondViewport=False)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
