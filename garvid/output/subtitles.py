"""Timed answers as SubRip (SRT) or WebVTT files, written by pysubs2.

Cue text is plain text from the model, so it is made safe for the formats first: blank
lines (which end a cue) are dropped, ``-->`` (which starts a timing line) is defused and,
in WebVTT, ``&``, ``<`` and ``>`` are escaped so players show them instead of reading
markup. pysubs2 keeps the text verbatim otherwise (``keep_ssa_tags``), braces included.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Literal, Sequence

import pysubs2

SubtitleFormat = Literal["srt", "vtt"]


@dataclass(frozen=True)
class Cue:
    """One subtitle: ``text`` (may span lines) shown from ``start`` to ``end`` seconds."""

    start: float
    end: float
    text: str


def _cue_text(text: str, fmt: SubtitleFormat) -> str:
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n")]
    joined = "\\N".join(line.replace("-->", "->") for line in lines if line)
    if not joined:
        raise ValueError("cue text is empty")
    return html.escape(joined, quote=False) if fmt == "vtt" else joined


def render_subtitles(cues: Sequence[Cue], fmt: SubtitleFormat) -> str:
    """The whole SRT or WebVTT file for ``cues`` (times rounded to milliseconds)."""
    if fmt not in ("srt", "vtt"):
        raise ValueError(f"unknown subtitle format {fmt!r}")
    subs = pysubs2.SSAFile()
    for cue in cues:
        if not 0 <= cue.start < cue.end:
            raise ValueError(f"a cue must have 0 <= start < end, got {cue.start} .. {cue.end}")
        subs.append(pysubs2.SSAEvent(start=round(cue.start * 1000), end=round(cue.end * 1000), text=_cue_text(cue.text, fmt)))
    text = subs.to_string(fmt, keep_ssa_tags=True)
    return text if text.startswith("WEBVTT") or fmt == "srt" else "WEBVTT\n\n" + text
