"""A real Label Studio on 127.0.0.1 for the review round trip, driven through its REST API.

Label Studio pulls in Django and many pinned packages, so it lives in its own environment
(`pip install label-studio` into a separate venv, or `pip install sipipeline[review]`); the
test finds its `label-studio` command through SIPIPELINE_LABEL_STUDIO_BIN, then PATH, then
`.venv-ls/bin/label-studio` in the checkout. Everything that would reach the internet (the
PyPI version check, analytics, Sentry) is switched off.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from sipipeline_tests.support.process_groups import stop_process_group

BIN_ENV = "SIPIPELINE_LABEL_STUDIO_BIN"
CHECKOUT_VENV_BIN = Path(__file__).resolve().parents[2] / ".venv-ls" / "bin" / "label-studio"
STARTUP_LIMIT_S = 900.0  # first start migrates a fresh database
TOKEN = "5ipipe11ne0review0token0for0tests0only0"  # a local, throwaway instance


def find_label_studio() -> str | None:
    """The `label-studio` command to run, or None when it is not installed."""
    configured = os.environ.get(BIN_ENV)
    if configured:
        return configured if Path(configured).is_file() else None
    return shutil.which("label-studio") or (
        str(CHECKOUT_VENV_BIN) if CHECKOUT_VENV_BIN.is_file() else None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LabelStudioServer:
    """`label-studio start` as a subprocess with its own data folder and an API token."""

    def __init__(self, binary: str, data_dir: Path) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir / "label-studio.log"

    def start(self) -> LabelStudioServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
               "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false",
               "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "",
               "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
               "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true"}
        env.pop("HOST", None)
        command = [self.binary, "start", "--no-browser", "--internal-host", "127.0.0.1",
                   "--port", str(self.port), "--data-dir", str(self.data_dir / "data"),
                   "--username", "reviewer@example.org", "--password", "review-pass-123",
                   "--user-token", TOKEN, "--enable-legacy-api-token"]
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        cwd=self.data_dir, start_new_session=True)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_LIMIT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"label-studio exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                self.get("/api/projects")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(2)
        raise RuntimeError(f"label-studio did not answer within {STARTUP_LIMIT_S:.0f} s:\n"
                           f"{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() \
            else ""

    def stop(self) -> None:
        # The server and its workers only.
        stop_process_group(self.process, signal.SIGTERM, timeout_s=30, kill_wait_s=30)

    def __enter__(self) -> LabelStudioServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- REST API
    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def get(self, path: str) -> Any:
        return self._call("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self._call("POST", path, body)

    def create_project(self, title: str, label_config: str) -> int:
        return self.post("/api/projects", {"title": title, "label_config": label_config})["id"]

    def import_tasks(self, project: int, tasks: list[dict]) -> None:
        self.post(f"/api/projects/{project}/import", tasks)

    def tasks(self, project: int) -> list[dict]:
        found = self.get(f"/api/tasks?project={project}&page_size=1000")
        return found["tasks"] if isinstance(found, dict) else found

    def annotate(self, task: int, result: list[dict]) -> None:
        self.post(f"/api/tasks/{task}/annotations", {"result": result, "was_cancelled": False})

    def export_json(self, project: int) -> list[dict]:
        return self.get(f"/api/projects/{project}/export?exportType=JSON")
