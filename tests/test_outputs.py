"""Atomic output writing: complete files or none at all."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from garvid.files import atomic_path, write_json, write_text


def test_write_json_creates_parent_dirs_and_leaves_no_temp_files(tmp_path: Path) -> None:
    os.umask(0o022)
    target = tmp_path / "out" / "result.json"
    write_json({"a": [1, 2]}, target)
    assert json.loads(target.read_text()) == {"a": [1, 2]}
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.json"]
    assert target.stat().st_mode & 0o044 == 0o044  # readable by others like any new file (umask 022)


def test_failure_keeps_previous_file_and_removes_temp(tmp_path: Path) -> None:
    target = tmp_path / "result.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        temp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def test_write_text_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    write_text("hello\n", None)
    write_text("again\n", Path("-"))
    assert capsys.readouterr().out == "hello\nagain\n"
