"""`sipipeline run` shows progress: a bar per stage on a terminal (pseudo-terminal here), plain
periodic lines when its output is not a terminal; then the round's whole funnel."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from sipipeline_tests.support.fake_model import respond
from sipipeline_tests.support.fake_openai_server import FakeOpenAIServer

STAGES = ("generated_instructions", "classification_labels", "instances")
WAIT_LIMIT_S = 300.0  # a guard against a hung child, not a speed requirement
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def cli_env(tmp_path):
    with FakeOpenAIServer(responder=respond) as server:
        yield {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"),
               "SIPIPELINE_STORAGE": str(tmp_path / "storage"),
               "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "test-key",
               "SIPIPELINE_LLM_MODEL": "fake-model", "TERM": "xterm-256color",
               "COLUMNS": "160"}


COMMAND = [sys.executable, "-m", "sipipeline.cli", "run", "--num-prompts", "3"]


def test_without_a_terminal_progress_comes_as_plain_lines(cli_env, tmp_path):
    result = subprocess.run(COMMAND, env=cli_env, capture_output=True, text=True,
                            timeout=WAIT_LIMIT_S, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for stage in STAGES:
        lines = [line for line in out.splitlines()
                 if line.startswith(f"sipipeline: round_001 {stage}: ")]
        assert lines, f"no progress line for {stage}"
        assert re.search(r": (\d+)/\1 requests \(0 from the journal\), .*, done, ", lines[-1])
    assert "\x1b[" not in out and "━" not in out  # no terminal control, no bar
    assert "added to the pool" in out and "candidates parsed from the responses" in out


def _run_in_pty(env, cwd) -> tuple[int, str]:
    master, slave = pty.openpty()
    process = subprocess.Popen(COMMAND, env=env, cwd=cwd, stdin=slave, stdout=slave,
                               stderr=slave, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + WAIT_LIMIT_S
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
    finally:
        os.close(master)
    return process.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def test_on_a_terminal_each_stage_gets_a_progress_bar(cli_env, tmp_path):
    code, output = _run_in_pty(cli_env, tmp_path)
    assert code == 0, output[-3000:]
    text = ANSI.sub("", output)
    assert "━" in text  # rich's bar
    for stage in STAGES:
        done = re.findall(rf"round_001 {stage}\s.*?━.*?(\d+)/(\d+)", text)
        assert done and any(a == b and int(a) > 0 for a, b in done), stage
    assert not re.search(r"^sipipeline: round_001 \w+: \d+/\d+ requests", text, re.M)
