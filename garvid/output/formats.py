"""``garvid ask`` / ``describe`` / ``when`` results as text, JSON, SRT or WebVTT."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from garvid.files import json_text
from garvid.output.subtitles import Cue, render_subtitles

from garvid.qa.when_result import WhenAnswer

if TYPE_CHECKING:
    from garvid.qa.answers import VideoAnswer

AnswerFormat = Literal["text", "json", "srt", "vtt"]
FORMATS: tuple[str, ...] = ("text", "json", "srt", "vtt")
SUFFIX_FORMATS = {".txt": "text", ".json": "json", ".srt": "srt", ".vtt": "vtt"}


def clock(seconds: float) -> str:
    """``m:ss.s`` (``h:mm:ss.s`` past an hour): times in text answers."""
    tenths = int(round(seconds * 10))
    hours, rest = divmod(tenths, 36000)
    minutes, rest = divmod(rest, 600)
    text = f"{minutes:02d}:{rest / 10:04.1f}" if hours else f"{minutes}:{rest / 10:04.1f}"
    return f"{hours}:{text}" if hours else text


def answer_prefix(start: float, end: float, object_id: int | None, windowed: bool) -> str:
    """What precedes an answer's text on its line: its window and, describing, its object."""
    parts = []
    if windowed:
        parts.append(f"[{clock(start)} - {clock(end)}] ")
    if object_id is not None:
        parts.append(f"object {object_id}: ")
    return "".join(parts)


#: Subtitle text for an answer GAR ended at once (a cue cannot be empty).
NO_ANSWER_TEXT = "(no answer)"


def answer_cues(result: VideoAnswer) -> list[Cue]:
    """One subtitle cue per window (describe: one line per object)."""
    cues = []
    for (start, end, _), group in result.by_window():
        if result.describing:
            text = "\n".join(f"Object {a.object_id}: {a.text or NO_ANSWER_TEXT}" for a in group)
        else:
            text = group[0].text or NO_ANSWER_TEXT
        cues.append(Cue(start=start, end=end, text=text))
    return cues


def render_answer(result: VideoAnswer, fmt: AnswerFormat) -> str:
    """The whole output file in ``fmt``."""
    if fmt == "json":
        return json_text(result.to_json())
    if fmt in ("srt", "vtt"):
        return render_subtitles(answer_cues(result), fmt)
    if fmt == "text":
        return "".join(answer_prefix(a.start, a.end, a.object_id, result.windowed) + a.text + "\n" for a in result.answers)
    raise ValueError(f"unknown format {fmt!r}")


def render_when(result: WhenAnswer, fmt: AnswerFormat) -> str:
    """``garvid when``'s whole output in ``fmt``: one line (text) or cue (SRT, VTT) per interval,
    the statement as each cue's text; JSON holds the intervals, the curve and the request."""
    if fmt == "json":
        return json_text(result.to_json())
    if fmt in ("srt", "vtt"):
        return render_subtitles([Cue(i.start, i.end, result.statement) for i in result.intervals], fmt)
    if fmt == "text":
        return "".join(f"{clock(i.start)} - {clock(i.end)}  peak {i.peak:.2f}\n" for i in result.intervals)
    raise ValueError(f"unknown format {fmt!r}")


def render_result(result: VideoAnswer | WhenAnswer, fmt: AnswerFormat) -> str:
    """An ``ask`` / ``describe`` or a ``when`` result in ``fmt`` (a batch holds either)."""
    return render_when(result, fmt) if isinstance(result, WhenAnswer) else render_answer(result, fmt)
