"""``garvid chat``: many questions about one clip, with the models loaded and the objects tracked once."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Optional, TextIO

import typer
from garvid_cli.app import app
from garvid_cli.ask import DESCRIBE_OPTIONS, _ShellReporter
from garvid_cli.console import stderr, warn
from garvid_cli.options import OUTPUT, REGION_OPTIONS, TracksFile, VideoPath, takes

from garvid.errors import GarvidError, check_text, printable
from garvid.files import RunInputs, check_output_file, write_text
from garvid.output.formats import answer_prefix
from garvid.options import AnswerOptions
from garvid.paths import user_path
from garvid.qa.video_request import VideoRequest
from garvid.regions.input import RegionInput

if TYPE_CHECKING:
    from garvid.qa.answers import VideoAnswer
    from garvid.qa.video_session import VideoSession

CHAT_FORMATS = ("text", "jsonl")
#: What the terminal loop takes for a command; over a pipe such a line is refused, not asked.
QUIT = ("/quit", "/exit", "/q")
COMMANDS = ("/objects", "/frames", "/save", *QUIT)
HELP = (
    "Ask question after question about one clip: GAR loads once and the objects are tracked once; "
    "keyframes, their encodings and the prompt before the question are reused, so a follow-up costs "
    "its own tokens plus the answer.\n\n"
    "Each question is answered on its own (GAR was trained on single turns): earlier questions and "
    "answers are not part of the next prompt.\n\n"
    "In a terminal: type a question; /objects, /frames, /save FILE (the answers so far as JSON lines), "
    "/quit (or Ctrl-D); Ctrl-C cancels the current answer. With stdin not a terminal: one question per "
    "line in, one line out per line in, in order (--format jsonl: the ask JSON of each, with its question); "
    "a failed question, a blank line or a line that looks like a /command (a pipe carries questions only) gives "
    "an empty line (jsonl: its error's text).\n\n"
    "Examples:\n\n"
    "  garvid chat clip.mp4 --mask first_frame.png\n\n"
    "  garvid chat clip.mp4 -m first_frame.png --format jsonl < questions.txt > answers.jsonl"
)


def answer_line(result: VideoAnswer) -> str:
    """One answer as one line of text (windows and objects prefixed, newlines folded)."""
    parts = [answer_prefix(a.start, a.end, a.object_id, result.windowed) + a.text for a in result.answers]
    return " ".join(" ".join(part.split()) for part in parts)


class Chat:
    """The question loop over an open session; ``transcript`` holds every answer's JSON.

    ``inputs`` are the files the session reads: ``/save`` gets the checks every output gets
    (never over an input, a folder or a non-regular file)."""

    def __init__(self, session: VideoSession, fmt: str, out: TextIO, inputs: RunInputs | None = None):
        self.session, self.fmt, self.out = session, fmt, out
        self.inputs = inputs or RunInputs()
        self.transcript: list[dict] = []
        self.failed, self.error = 0, ""

    def ask(self, question: str, where: str = "") -> VideoAnswer | None:
        """Answer one question; a bad one is reported on stderr (after ``where``, e.g. ``line 3:``),
        kept in ``error`` and answered with nothing."""
        try:
            result = self.session.ask(check_text(question, "the question"))
        except GarvidError as error:
            return self._fail(f"{where}{error}")
        self.transcript.append(result.to_json())
        return result

    def _fail(self, message: str) -> None:
        warn(message)
        self.error = message
        self.failed += 1

    def piped(self, lines: Iterable[str]) -> bool:
        """One output line per input line, in order: an answer, or an empty line (jsonl: a record
        with the error's text) for a failed question, a blank line or a line that looks like a
        command (a pipe carries questions only). False when stdout's reader has gone."""
        for number, line in enumerate(lines, 1):
            question, result = line.strip(), None
            if not question:
                self.error = "a blank line: nothing asked"  # not a failure
            elif question.split()[0] in COMMANDS:
                self._fail(f"line {number}: {question.split()[0]} is a terminal command; over a pipe every line is a question")
            else:
                result = self.ask(question, f"line {number}: ")
            if self.fmt == "jsonl":
                record = result.to_json() if result is not None else {"question": printable(question), "error": self.error}
                text = json.dumps(record, ensure_ascii=False)
            else:
                text = answer_line(result) if result is not None else ""
            try:
                self.out.write(text + "\n")
                self.out.flush()
            except BrokenPipeError:
                return False
        return True

    def interactive(self, read: Callable[[str], str]) -> None:
        """Read, answer (streamed by the session's reporter), repeat; Ctrl-C cancels one answer."""
        while True:
            try:
                line = read("? ").strip()
            except EOFError:
                self.out.write("\n")
                return
            except KeyboardInterrupt:
                self.out.write("\n")
                continue
            if not line:
                continue
            if line.startswith("/"):
                if self.command(line):
                    return
                continue
            try:
                result = self.ask(line)
            except KeyboardInterrupt:
                self.out.write("\n")
                warn("answer cancelled")
                continue
            if result is not None and self.fmt == "jsonl":
                self.out.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")

    def command(self, line: str) -> bool:
        """Run a /command; True to end the session."""
        name, _, argument = line.partition(" ")
        session = self.session
        if name in QUIT:
            return True
        if name == "/objects":
            for object_id in session.object_ids:
                seen = [f for f in session.tracks.frames if session.tracks.observation(object_id, f).visible]
                self.out.write(f"object {object_id}: visible on {len(seen)} of {len(session.tracks.frames)} tracked frames\n")
        elif name == "/frames":
            tracks = session.tracks
            self.out.write(f"tracked frames ({len(tracks.frames)}, stride {tracks.stride}): {tracks.frames}\n")
            if self.transcript:
                self.out.write(f"last answer's keyframes: {[k['frame'] for k in self.transcript[-1]['keyframes']]}\n")
        elif name == "/save":
            if not argument.strip():
                warn("/save needs a file name")
                return False
            self.save(user_path(argument.strip()))
        else:
            warn(f"unknown command {name}: use /objects, /frames, /save FILE or /quit")
        return False


    def save(self, path: Path) -> None:
        """Write the answers so far to ``path`` as JSON lines, after the checks every output gets."""
        if not self.transcript:
            warn(f"no answers yet: nothing saved to {path}")
            return
        created = not path.parent.exists()
        try:
            check_output_file("/save", path, self.inputs)
            write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.transcript), path)
        except GarvidError as error:
            warn(str(error))
            return
        except OSError as error:
            warn(f"cannot write {path}: {error.strerror or error}")
            return
        made = f" (created the folder {path.parent})" if created else ""
        stderr.print(f"wrote {len(self.transcript)} answers to {path}{made}", highlight=False)


def _line_reader() -> Callable[[str], str]:
    """``input`` with line editing and a history file (readline), where readline exists."""
    try:
        import readline
    except ImportError:
        return input
    from garvid.paths import cache_root

    history = cache_root() / "chat_history"
    try:
        readline.read_history_file(history)
    except OSError:
        pass

    def read(prompt: str) -> str:
        line = input(prompt)
        try:
            history.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(history)
        except OSError:
            pass
        return line

    return read


@app.command(help=HELP)
@takes(REGION_OPTIONS, DESCRIBE_OPTIONS)
def chat(
    video: VideoPath,
    chat_format: Optional[str] = typer.Option(
        None, "--format", "-f", help="text (default) or jsonl: the ask JSON per question, with its question.", rich_help_panel=OUTPUT
    ),
    tracks: TracksFile = None,
    *,
    regions: RegionInput,
    options: AnswerOptions,
) -> None:
    fmt = chat_format or "text"
    if fmt not in CHAT_FORMATS:
        raise GarvidError(f"--format must be one of {', '.join(CHAT_FORMATS)}, not {fmt!r}")
    request = VideoRequest(video, regions, None, options, tracks)
    interactive = sys.stdin.isatty()
    if hasattr(sys.stdin, "reconfigure"):
        sys.stdin.reconfigure(errors="surrogateescape")  # a line of bytes that are not UTF-8 fails alone, not the session
    from garvid.qa.video_session import VideoSession  # torch and transformers load here, not for --help

    reporter = _ShellReporter(stream=interactive and fmt == "text", windowed=options.keyframes.window is not None)
    with VideoSession(request, reporter) as session:
        loop = Chat(session, fmt, sys.stdout, RunInputs(request.input_paths()))
        if interactive:
            stderr.print(f"objects {session.object_ids}; /objects, /frames, /save FILE, /quit", highlight=False)
            loop.interactive(_line_reader())
        elif not loop.piped(sys.stdin):
            # the reader went away (`| head -n 1`): leave quietly, as batch and Unix filters do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return
    if loop.failed and not interactive:
        raise typer.Exit(1)
