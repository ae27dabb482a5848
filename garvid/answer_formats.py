"""``garvid ask`` / ``garvid describe`` results as text, JSON, SRT or WebVTT."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from garvid.outputs import json_text
from garvid.subtitles import render_subtitles

if TYPE_CHECKING:
    from garvid.video_answer import VideoAnswer

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


def render_answer(result: VideoAnswer, fmt: AnswerFormat) -> str:
    """The whole output file in ``fmt``."""
    if fmt == "json":
        return json_text(result.to_json())
    if fmt in ("srt", "vtt"):
        return render_subtitles(result.cues(), fmt)
    if fmt == "text":
        return "".join(answer_prefix(a.start, a.end, a.object_id, result.windowed) + a.text + "\n" for a in result.answers)
    raise ValueError(f"unknown format {fmt!r}")
