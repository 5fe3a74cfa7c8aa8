"""`dagster-daemon run` on the deploy recipe's workspace as a child process, for deploy tests.

The daemon (and the code server and run workers it starts) runs in its own session and is
stopped by its PID's process group: SIGTERM, then SIGKILL when it has not exited in time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from sipipeline_tests.support.dagster_dev import REPO_ROOT, _restore_default_signals
from sipipeline_tests.support.process_groups import stop_process_group

DEPLOY_DIR = REPO_ROOT / "deploy"
WORKSPACE = DEPLOY_DIR / "workspace.yaml"


def venv_command(name: str) -> str:
    """A console script of the running interpreter's environment (else from PATH)."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def dagster_cli(args: list[str], env: dict[str, str], timeout_s: float = 180.0) -> str:
    """Run `dagster ARGS` against the deploy workspace; its output, or an error with it."""
    result = subprocess.run([venv_command("dagster"), *args], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=timeout_s,
                            stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"dagster {' '.join(args)} failed ({result.returncode}):\n"
                           f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


class DagsterDaemon:
    """One `dagster-daemon run -w deploy/workspace.yaml` process group."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._log = None
        self._groups: list[int] = []  # every process group started, for the final cleanup

    def start(self) -> DagsterDaemon:
        if self._log is None:
            self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [venv_command("dagster-daemon"), "run", "-w", str(WORKSPACE)], cwd=REPO_ROOT,
            env=self.env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=_restore_default_signals, start_new_session=True)
        self._groups.append(self.process.pid)
        return self

    def stop_daemon_only(self, timeout_s: float = 60.0) -> int:
        """SIGTERM to the daemon process alone, as an operator stopping the service does; its
        code server and run workers are left to finish what they run. The exit code."""
        process = self.process
        assert process is not None and process.poll() is None, "the daemon is not running"
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=timeout_s)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 30.0) -> None:
        """`sig` to the whole group (daemon, code server, run workers), SIGKILL after timeout."""
        stop_process_group(self.process, sig, timeout_s)
        for group in self._groups:  # code servers and run workers of earlier daemons too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> DagsterDaemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
