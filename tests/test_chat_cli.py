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
    assert records.pop() == {"question": "", "error": "a blank line: nothing asked"}  # one line out per line in
    assert [r["question"] for r in records] == QUESTIONS
    assert "9" in records[2]["error"] and "9" in captured.err
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


class _Session:
    """Answers any question with its own text; a question naming object 9 is bad input."""

    def __init__(self):
        self.asked: list[str] = []

    def ask(self, question: str):
        from types import SimpleNamespace

        from garvid.errors import GarvidError

        self.asked.append(question)
        if "9" in question:
            raise GarvidError("there is no object 9")
        answer = SimpleNamespace(start=0.0, end=1.0, object_id=None, text=f"re: {question}")
        return SimpleNamespace(answers=[answer], windowed=False, to_json=lambda: {"question": question, "answer": answer.text})


def test_a_pipe_gives_one_line_out_per_line_in_and_carries_questions_only(capsys):
    lines = ["first?", "", "/quit", "object 9?", "bad \udcff\udcfe bytes", "last?"]
    session = _Session()
    for fmt in ("text", "jsonl"):
        out = io.StringIO()
        loop = chat_cli.Chat(session, fmt, out)
        assert loop.piped(line + "\n" for line in lines) is True
        written = out.getvalue().splitlines()
        assert len(written) == len(lines)  # the N-th line out answers the N-th line in
        if fmt == "text":
            assert written == ["re: first?", "", "", "", "", "re: last?"]
        else:
            records = [json.loads(line) for line in written]
            assert [r.get("error", "") for r in records] == [
                "",
                "a blank line: nothing asked",
                "line 3: /quit is a terminal command; over a pipe every line is a question",
                "line 4: there is no object 9",
                "line 5: the question holds '\\udcff\\udcfe', which is not valid Unicode text (bytes that are not UTF-8?)",
                "",
            ]
            assert records[4]["question"] == "bad \\udcff\\udcfe bytes"  # escaped: the record is valid UTF-8
        assert loop.failed == 3  # the blank line asked nothing, and failed nothing
    assert session.asked == ["first?", "object 9?", "last?"] * 2  # the command and the bad bytes never reached GAR
    err = capsys.readouterr().err
    assert "line 5: the question holds" in err and "Traceback" not in err


def test_a_pipe_whose_reader_has_gone_ends_the_loop_quietly():
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError

    session = _Session()
    assert chat_cli.Chat(session, "text", Closed()).piped(["a?\n", "b?\n"]) is False
    assert session.asked == ["a?"]


@pytest.mark.slow
def test_chat_into_head_exits_0_like_batch(clip, tmp_path):
    import subprocess

    args = [sys.executable, "-m", "garvid_cli", *_args(clip, tmp_path)]
    process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdin.write(b"where is object 1?\n" * 20)
    process.stdin.close()
    assert process.stdout.readline()  # `| head -n 1`: one line read, then the reader goes
    process.stdout.close()
    assert process.wait(timeout=300) == 0
    err = process.stderr.read().decode()
    assert "Traceback" not in err and "BrokenPipe" not in err
