"""Where a prompt lies, as typed: ``@TIME`` after a mask, box or point, and ``N=`` before a
box or point naming its object.

``TIME`` is seconds (``4.5``, or ``4.5s``) or a frame index (``f120``); a prompt without it
lies on the prompt frame (``--mask-frame``). A time in seconds names the frame that starts
nearest to it (:func:`garvid.media.timing.frame_at`), with the video's own timestamps
(:func:`garvid.regions.prompts.resolve_prompts` places each prompt).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from garvid.errors import OptionError

_FRAME = re.compile(r"f(\d+)")
_SECONDS = re.compile(r"([0-9.eE+-]+)s?")
_OBJECT_ID = re.compile(r"\s*(\d+)\s*=(.*)", re.DOTALL)
#: What a good TIME looks like, for errors.
TIME_FORMS = "seconds like 4.5 (or 4.5s) or a frame index like f120"


@dataclass(frozen=True)
class PromptTime:
    """A prompt's frame as the user named it: a frame index, or a time in seconds."""

    frame: int | None = None
    seconds: float | None = None

    def __str__(self) -> str:
        """The time as typed, canonically (``f120``, ``4.5``): what digests hold."""
        return f"f{self.frame}" if self.frame is not None else repr(self.seconds)


def parse_time(text: str, field: str, prompt: str) -> PromptTime:
    """``TIME`` (what follows ``@``) of ``prompt``, an entry of the RegionInput field ``field``;
    OptionError naming both when it is malformed, negative or not a finite number."""
    spec = text.strip()
    frame, seconds = _FRAME.fullmatch(spec), _SECONDS.fullmatch(spec)
    if frame:
        return PromptTime(frame=int(frame.group(1)))
    value = math.nan
    if seconds:
        try:
            value = float(seconds.group(1))
        except ValueError:
            pass
    if not math.isfinite(value):
        raise OptionError(field, f"{prompt!r}: bad time {spec!r} after @: expected {TIME_FORMS}")
    if value < 0:
        raise OptionError(field, f"{prompt!r}: the time {value:g} s is negative")
    return PromptTime(seconds=value)


def split_time(text: str, field: str) -> tuple[str, PromptTime | None]:
    """``text`` without its ``@TIME``, and the time (None without one)."""
    body, at, spec = text.rpartition("@")
    if not at:
        return text, None
    return body, parse_time(spec, field, text)


def split_object_id(text: str, field: str) -> tuple[int | None, str]:
    """The object id of ``N=...`` (None without one) and the rest of ``text``."""
    match = _OBJECT_ID.fullmatch(text)
    if match:
        object_id = int(match.group(1))
        if object_id < 1:
            raise OptionError(field, f"{text!r}: object ids start at 1, not {object_id}")
        return object_id, match.group(2)
    if "=" in text:
        raise OptionError(field, f"{text!r}: expected an object id before '=', like 2=...")
    return None, text
