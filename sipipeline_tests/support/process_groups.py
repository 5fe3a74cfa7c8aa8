"""Stopping a child that leads its own process group (servers with workers of their own)."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_process_group(process: subprocess.Popen | None, first: signal.Signals = signal.SIGTERM,
                       timeout_s: float = 20.0, kill_wait_s: float = 10.0) -> None:
    """`first` to the group `process` leads; SIGKILL to it if the leader outlives `timeout_s`."""
    if process is None or process.poll() is not None:
        return
    for sig, wait_s in ((first, timeout_s), (signal.SIGKILL, kill_wait_s)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue
