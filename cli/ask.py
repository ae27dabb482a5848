"""``garvid ask`` and ``garvid describe``: GAR on tracked objects over time."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from garvid_cli.app import app
from garvid_cli.console import BarsReporter, stderr
from garvid_cli.options import ANSWER_OPTIONS, PROMPT_OPTIONS, REGION_OPTIONS, Format, Output, TracksFile, VideoPath, takes

from garvid.errors import GarvidError
from garvid.files import check_outputs, write_text
from garvid.options import AnswerOptions
from garvid.output.formats import FORMATS, SUFFIX_FORMATS, answer_prefix, render_answer
from garvid.qa.keyframes import Window
from garvid.qa.video_request import VideoRequest
from garvid.regions.input import RegionInput

if TYPE_CHECKING:
    from garvid.qa.answers import Answer

EXAMPLES = (
    "Examples:\n\n"
    '  garvid ask clip.mp4 --mask first_frame.png "what does object 1 do to object 2?"\n\n'
    '  garvid ask clip.mp4 -m first_frame.png "where does #2 go?" --window 2.5 -o answers.srt\n\n'
    "  garvid describe clip.mp4 -m first_frame.png --window 5 --format vtt > captions.vtt"
)


class _ShellReporter(BarsReporter):
    """Progress bars and warnings on stderr; streams answers to stdout when asked to."""

    def __init__(self, stream: bool, windowed: bool):
        super().__init__()
        self.stream, self.windowed = stream, windowed

    def progress(self, stage: str, done: int, total: int) -> None:
        if not (self.stream and stage == "answering"):  # the streamed text is the progress
            super().progress(stage, done, total)

    def answer_begins(self, window: Window, object_id: int | None) -> None:
        if self.stream:
            self._write(answer_prefix(window.start, window.end, object_id, self.windowed))

    def token(self, text: str) -> None:
        if self.stream:
            self._write(text)

    def answer_ends(self, answer: Answer) -> None:
        if self.stream:
            self._write("\n")

    @staticmethod
    def _write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()


def chosen_format(fmt: str | None, output: Path | None) -> str:
    """``--format``, else the format the ``-o`` suffix names, else text."""
    if fmt is None:
        return SUFFIX_FORMATS.get(output.suffix.lower(), "text") if output is not None else "text"
    if fmt not in FORMATS:
        raise GarvidError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return fmt


def _run(request: VideoRequest, fmt: str | None, output: Path | None) -> None:
    chosen = chosen_format(fmt, output)
    check_outputs({"-o": output}, request.input_paths())
    stream = chosen == "text" and output is None
    from garvid.qa.context import AnswerContext
    from garvid.qa.video_answering import answer_video  # torch and transformers load here, not for --help

    result = answer_video(request, AnswerContext(_ShellReporter(stream, request.options.keyframes.window is not None)))
    if not stream:
        write_text(render_answer(result, chosen), output)
    if output is not None:
        stderr.print(f"wrote {output}", highlight=False)


@app.command(help=f"Ask GAR a question about tracked objects over time (object N = mask value N).\n\n{EXAMPLES}")
@takes(REGION_OPTIONS, ANSWER_OPTIONS)
def ask(
    video: VideoPath,
    question: Optional[str] = typer.Argument(..., help="Question naming objects as 'object 1', 'obj 2', '#3'."),
    output_format: Format = None,
    output: Output = None,
    tracks: TracksFile = None,
    *,
    regions: RegionInput,
    options: AnswerOptions,
) -> None:
    _run(VideoRequest(video, regions, question, options, tracks), output_format, output)


#: ``describe`` asks no multiple-choice question.
DESCRIBE_OPTIONS = ANSWER_OPTIONS.replacing(PROMPT_OPTIONS.without("multiple_choice"))


@app.command(
    help=(
        "Describe what each tracked object does, per window: GAR's detailed description, in temporal form.\n\n"
        f"{EXAMPLES}"
    )
)
@takes(REGION_OPTIONS, DESCRIBE_OPTIONS)
def describe(
    video: VideoPath,
    output_format: Format = None,
    output: Output = None,
    tracks: TracksFile = None,
    *,
    regions: RegionInput,
    options: AnswerOptions,
) -> None:
    _run(VideoRequest(video, regions, None, options, tracks), output_format, output)
