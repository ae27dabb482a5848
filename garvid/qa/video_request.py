"""What ``garvid ask`` / ``describe`` / ``chat`` / ``when`` are asked to do: plain data, no heavy imports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from garvid.options import AnswerOptions, WhenOptions
from garvid.regions.input import RegionInput


@dataclass(frozen=True)
class VideoRequest:
    """A video, the objects in it, a question (``None`` describes every object) and the option groups.

    ``tracks`` names a tracks JSON (``garvid track``'s schema) used instead of tracking: it
    gives the objects, so ``regions`` then holds no masks, boxes or points.
    """

    video: Path
    regions: RegionInput = field(default_factory=RegionInput)
    question: str | None = None
    options: AnswerOptions = field(default_factory=AnswerOptions)
    tracks: Path | None = None
    literal_question: bool = False  # the question is GAR's own text (<PromptK> names slot K): nothing is rewritten
    when: WhenOptions | None = None  # garvid when: find where the question (a statement) holds instead of answering it

    def input_paths(self) -> tuple[Path | str | None, ...]:
        """What the request reads from disk (names that are not paths are presets or hub ids)."""
        detector = self.regions.detector if self.regions.objects else None
        return (self.video, *self.regions.mask_files, self.tracks, detector, *run_input_paths(self.options))


def run_input_paths(options: AnswerOptions) -> tuple[str | None, ...]:
    """The files the option groups may name (a protocol, model or tracker that is not a path is a name)."""
    return (options.keyframes.protocol, options.model.name, options.tracking.tracker)
