"""`dagster dev` as a child process on 127.0.0.1, with a small GraphQL client, for UI tests.

The child gets default SIGINT/SIGTERM handlers (a non-interactive parent may have left them
ignored) and its own session, and is stopped by its PID: SIGTERM to its process group, then
SIGKILL if it has not exited in time. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from sipipeline_tests.support.process_groups import stop_process_group

REPO_ROOT = Path(__file__).resolve().parents[2]


class DagsterDevError(RuntimeError):
    """dagster dev did not come up, or a GraphQL call failed."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _restore_default_signals() -> None:
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)


class DagsterDev:
    """One `dagster dev -w workspace.yaml -h 127.0.0.1 -p PORT` process."""

    def __init__(self, home: Path, env: dict[str, str], log_path: Path,
                 cwd: Path = REPO_ROOT) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.cwd = cwd
        self.env = {**os.environ, **env, "DAGSTER_HOME": str(home)}
        self.process: subprocess.Popen | None = None
        self._log = None

    def start(self) -> DagsterDev:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n",
                                                encoding="utf-8")
        dagster = Path(sys.executable).with_name("dagster")
        command = [str(dagster) if dagster.exists() else "dagster", "dev", "-w",
                   "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port)]
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=_restore_default_signals, start_new_session=True)
        return self

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise DagsterDevError(f"dagster dev exited with {self.process.returncode}:\n"
                                  f"{self.log_tail()}")

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Until the webserver answers and the code location has loaded."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        else:
            raise DagsterDevError(f"dagster dev not up in {timeout_s}s:\n{self.log_tail()}")
        query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus " \
                "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
        while time.monotonic() < deadline:
            self._check_alive()
            entries = self.graphql(query)["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                errors = [e for e in entries
                          if e["locationOrLoadError"]["__typename"] == "PythonError"]
                if errors:
                    raise DagsterDevError(f"code location failed to load: {errors}")
                return
            time.sleep(0.5)
        raise DagsterDevError(f"code location not loaded in {timeout_s}s:\n{self.log_tail()}")

    def graphql(self, query: str, variables: dict[str, Any] | None = None,
                timeout_s: float = 60.0) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode("utf-8")
        request = urllib.request.Request(f"{self.url}/graphql", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as answer:
                payload = json.loads(answer.read())
        except urllib.error.HTTPError as error:
            raise DagsterDevError(f"GraphQL HTTP {error.code}: "
                                  f"{error.read()[:2000].decode(errors='replace')}") from error
        if payload.get("errors"):
            raise DagsterDevError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM to the process group led by the child's PID, then SIGKILL if needed."""
        process = self.process
        stop_process_group(process, signal.SIGTERM, timeout_s)
        if process is not None:
            # Children (daemon, code server, run workers) share the group: make sure none stay.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> DagsterDev:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
