"""Whole-or-nothing writes: the old file survives a write that fails midway."""

from __future__ import annotations

import os
import stat

import pytest

from sipipeline.reporting.atomic import replacing, write_text, write_with
from sipipeline_tests.support.disk_full import fill_disk_on_open


def test_write_replaces_the_file_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "sub" / "report.html"
    write_text(target, "first\n")
    write_text(target, "second ünïcode\n")
    assert target.read_text(encoding="utf-8") == "second ünïcode\n"
    binary = write_with(tmp_path / "x.bin", lambda partial: partial.write_bytes(b"\x00\x01"))
    assert binary.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["report.html", "sub", "x.bin"]


def test_a_full_disk_midway_keeps_the_old_file_and_no_partial(tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    write_text(target, "the complete old report\n")
    attempts = fill_disk_on_open(monkeypatch, "report.html")
    with pytest.raises(OSError, match="No space left"):
        write_text(target, "a new report that does not fit\n" * 100)
    assert attempts  # the write really started
    assert target.read_text() == "the complete old report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_an_error_in_the_writer_leaves_no_file(tmp_path):
    target = tmp_path / "data.parquet"
    with pytest.raises(RuntimeError), replacing(target) as partial:
        partial.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert list(tmp_path.iterdir()) == []


def test_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    written = write_text(tmp_path / "report.html", "x")
    assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~umask
