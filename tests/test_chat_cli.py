"""``garvid chat``: questions over a pipe (N in, N out, in order), and the interactive loop with
its commands and Ctrl-C cancelling one answer, not the session."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from garvid_cli import chat as chat_cli
from garvid_cli.ask import _ShellReporter
from garvid_cli.main import run

TINY = ["--model", "tiny-random", "--tracker", "tiny-random", "--device", "cpu", "--max-new-tokens", "3", "--frames", "2"]
QUESTIONS = ["what does object 2 do to object 1?", "where is object 1?", "what does object 9 do?", "what is #2?"]


@pytest.fixture
def clip(two_object_clip) -> tuple[Path, Path]:
    return two_object_clip


def _args(clip, tmp_path, *extra) -> list[str]:
    return ["chat", str(clip[0]), "-m", str(clip[1]), *TINY, "--cache-dir", str(tmp_path / "cache"), *extra]


@pytest.mark.slow
def test_questions_on_a_pipe_get_one_answer_each_in_order(clip, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(QUESTIONS) + "\n\n"))
    assert run(_args(clip, tmp_path, "--format", "jsonl")) == 1  # one question failed
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["question"] for r in records] == QUESTIONS
    assert records[2]["error"] and "9" in captured.err
    assert [o["id"] for o in records[0]["objects"]] == [1, 2] and [o["id"] for o in records[1]["objects"]] == [1]
    assert records[0]["keyframes"] == records[1]["keyframes"]
    assert all(r["tracker"]["tracked_objects"] == [] for r in (records[1], records[3]))  # tracked once, at the start

    monkeypatch.setattr(sys, "stdin", io.StringIO(QUESTIONS[1] + "\n" + QUESTIONS[0] + "\n"))
    assert run(_args(clip, tmp_path)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [records[1]["answer"], records[0]["answer"]]  # text: one line per answer, same answers


@pytest.mark.slow
def test_interactive_commands_and_ctrl_c_cancelling_one_answer(clip, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    typed = iter(["/objects", KeyboardInterrupt, QUESTIONS[0], QUESTIONS[1], "/frames", "/nope", f"/save {tmp_path / 's.jsonl'}", "/quit"])

    def read(prompt: str) -> str:
        line = next(typed)
        if line is KeyboardInterrupt:
            raise KeyboardInterrupt  # Ctrl-C at the prompt: a new prompt
        return line

    monkeypatch.setattr(chat_cli, "_line_reader", lambda: read)
    stream = _ShellReporter.token
    cancels = iter([True])

    def token(self, text: str) -> None:
        if next(cancels, False):
            raise KeyboardInterrupt  # Ctrl-C during the first answer
        stream(self, text)

    monkeypatch.setattr(_ShellReporter, "token", token)
    assert run(_args(clip, tmp_path)) == 0
    captured = capsys.readouterr()
    assert "object 1: visible on" in captured.out and "object 2: visible on" in captured.out
    assert "answer cancelled" in captured.err and "unknown command /nope" in captured.err
    assert "tracked frames" in captured.out and "last answer's keyframes" in captured.out
    saved = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [s["question"] for s in saved] == [QUESTIONS[1]]  # the cancelled answer is not in the transcript
    assert saved[0]["answer"] in captured.out  # the second answer was streamed


class _Answered:
    """A finished answer as the session returns it (only what /save reads)."""

    def to_json(self) -> dict:
        return {"question": "q", "answer": "a"}


def test_save_refuses_the_inputs_and_says_when_it_creates_a_folder(two_object_clip, tmp_path, capsys):
    video, mask = two_object_clip
    before = {path: path.read_bytes() for path in (video, mask)}
    loop = chat_cli.Chat(session=None, fmt="text", out=io.StringIO(), inputs=chat_cli.RunInputs([video, mask]))
    loop.command(f"/save {video}")  # no answers yet: nothing written, not even an empty file
    assert "no answers yet" in capsys.readouterr().err
    loop.transcript.append(_Answered().to_json())
    for target in (video, mask):
        loop.command(f"/save {target}")
        assert "an input of this run" in capsys.readouterr().err
    link = tmp_path / "link.mp4"
    link.symlink_to(video)
    loop.command(f"/save {link}")
    assert "an input of this run" in capsys.readouterr().err
    assert {path: path.read_bytes() for path in (video, mask)} == before
    loop.command(f"/save {tmp_path / 'new' / 'dir' / 's.jsonl'}")
    assert "created the folder" in capsys.readouterr().err
    assert json.loads((tmp_path / "new" / "dir" / "s.jsonl").read_text()) == {"question": "q", "answer": "a"}
