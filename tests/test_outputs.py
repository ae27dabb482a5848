"""Outputs: written atomically (complete files or none), and checked before any work."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from garvid_cli.main import run

from garvid.errors import GarvidError
from garvid.files import RunInputs, atomic_path, check_output_folder, check_outputs, write_json, write_text


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


# --- outputs are checked before any work: writable, and never an input of the run -----------

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A video, a mask and a frame folder (with one frame) in ``tmp_path``."""
    video, mask, frames = tmp_path / "v.mp4", tmp_path / "m.png", tmp_path / "frames"
    video.write_bytes(b"video bytes")
    mask.write_bytes(b"mask bytes")
    frames.mkdir()
    (frames / "00000.jpg").write_bytes(b"frame")
    return video, mask, frames


def test_an_output_that_is_an_input_is_refused_by_name_link_or_folder(tmp_path, inputs):
    video, mask, frames = inputs
    (tmp_path / "link.json").symlink_to(mask)
    os.link(video, tmp_path / "hard.json")
    cases = {
        video: "an input of this run",
        tmp_path / "sub" / ".." / "m.png": "an input of this run",
        tmp_path / "link.json": f"resolves to {mask}",
        tmp_path / "hard.json": "an input of this run",
        frames / "00001.jpg": "a folder this run reads",
    }
    for output, message in cases.items():
        with pytest.raises(GarvidError, match=message):
            check_outputs({"-o": output}, [video, mask, frames, "tiny-random", None])
    check_outputs({"-o": tmp_path / "answer.json", "--render": None}, [video, mask, frames, "tiny-random"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "hard.json", "link.json", "m.png", "v.mp4"]
    assert video.read_bytes() == b"video bytes" and mask.read_bytes() == b"mask bytes"


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("", "names no file"),
        ("{tmp}", "is a folder"),
        ("{tmp}/m.png/x.json", "m.png is not a folder"),
        ("/proc/garvid-out.json", "/proc is not writable"),
        ("/dev/null", "not a regular file"),
    ],
)
def test_an_output_that_cannot_be_written_is_refused(tmp_path, inputs, output, message):
    with pytest.raises(GarvidError, match=message):
        check_outputs({"-o": Path(output.format(tmp=tmp_path))}, [])


def test_two_outputs_may_not_be_one_file(tmp_path):
    with pytest.raises(GarvidError, match="--render and -o are the same file"):
        check_outputs({"-o": tmp_path / "a.mp4", "--render": tmp_path / "." / "a.mp4"}, [])


def test_an_output_folder_must_be_a_writable_folder_outside_the_inputs(tmp_path, inputs):
    video, mask, frames = inputs
    for folder, message in ((mask, "is a file, not a folder"), (frames / "out", "a folder this run reads"), (Path("/proc/x"), "not writable")):
        with pytest.raises(GarvidError, match=message):
            check_output_folder("-o", folder, RunInputs([video, mask, frames]))
    check_output_folder("-o", tmp_path / "new" / "out", RunInputs([video, mask, frames]))
    assert not (tmp_path / "new").exists()  # checking creates nothing


def _tiny(command: list[str]) -> list[str]:
    return ["--tracker" if command[0] == "track" else "--model", "tiny-random"]


def _one_line(code: int, err: str, needle: str) -> None:
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("garvid: error: ") and needle in err, err


@pytest.mark.parametrize(
    "command",
    [
        ["ask", "{video}", "what is object 1?", "-m", "{mask}", "--format", "json", "-o", "{video}"],
        ["ask", "{video}", "what is object 1?", "-m", "{mask}", "-o", "{link}"],
        ["describe", "{video}", "-m", "{mask}", "-o", "{mask}"],
        ["track", "{video}", "-m", "{mask}", "--render", "{video}"],
        ["track", "{video}", "-m", "{mask}", "-o", "{mask}"],
        ["image", "{mask}", "what is object 1?", "-m", "{mask}", "-o", "{mask}"],
        ["batch", "{manifest}", "-q", "what is object 1?", "-o", "{folder}"],
        ["eval", "gar-bench-vqa", "{questions}", "-o", "{questions}"],
    ],
)
def test_every_command_refuses_to_write_over_its_inputs(tmp_path, capsys, command):
    """Refused before anything loads or runs: one line, exit 2, every input intact."""
    video, mask = tmp_path / "v.mp4", tmp_path / "m.png"
    video.write_bytes((ROOT / "samples" / "cups.mp4").read_bytes())
    mask.write_bytes((ROOT / "samples" / "cups_mask.png").read_bytes())
    (tmp_path / "link.json").symlink_to(video)
    manifest = tmp_path / "out" / "errors.jsonl"  # a manifest where batch keeps its error list
    manifest.parent.mkdir()
    manifest.write_text(json.dumps({"video": str(video), "mask": str(mask), "image": "m.png"}) + "\n")
    questions = tmp_path / "q.json"
    questions.write_text("[]")
    before = {p: p.read_bytes() for p in (video, mask, manifest, questions)}
    names = {"video": video, "mask": mask, "link": tmp_path / "link.json", "manifest": manifest, "folder": manifest.parent, "questions": questions}
    args = [a.format(**names) for a in command] + _tiny(command)
    _one_line(run(args), capsys.readouterr().err, "an input of this run")
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["errors.jsonl", "link.json", "m.png", "out", "q.json", "v.mp4"]


@pytest.mark.parametrize(
    ("command", "needle"),
    [
        (["track", "{video}", "-m", "{mask}", "-o", "{mask}/x.json"], "is not a folder"),
        (["ask", "{video}", "what is object 1?", "-m", "{mask}", "-o", "{tmp}"], "is a folder"),
        (["image", "{mask}", "what is object 1?", "-m", "{mask}", "-o", ""], "names no file"),
        (["describe", "{video}", "-m", "{mask}", "-o", "/proc/x.json"], "not writable"),
        (["batch", "-", "-q", "what is object 1?", "-o", "{mask}"], "is a file, not a folder"),
        (["batch", "-", "-q", "what is object 1?", "-o", ""], "names no folder"),
        (["eval", "videorefer-q", "{mask}", "--video-root", "{tmp}", "-o", "{tmp}"], "is a folder"),
    ],
)
def test_unwritable_outputs_are_refused_before_work(tmp_path, capsys, monkeypatch, command, needle):
    video, mask = tmp_path / "v.mp4", tmp_path / "m.png"
    video.write_bytes((ROOT / "samples" / "cups.mp4").read_bytes())
    mask.write_bytes((ROOT / "samples" / "cups_mask.png").read_bytes())
    if command[1] == "videorefer-q":
        mask = tmp_path / "q.json"
        mask.write_text("[]")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    args = [a.format(video=video, mask=mask, tmp=tmp_path) for a in command] + _tiny(command)
    _one_line(run(args), capsys.readouterr().err, needle)
