"""What ``garvid ask`` / ``garvid describe`` are asked to do: plain data, no heavy imports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from garvid.options import DEFAULT_ATTENTION, GenerationOptions, PromptOptions
from garvid.qa.keyframes import Strategy
from garvid.regions.input import RegionInput


@dataclass(frozen=True)
class VideoRequest:
    """Everything ``garvid ask`` / ``garvid describe`` need: the CLI's options one to one.

    ``question=None`` describes every object (``garvid describe``).
    """

    video: Path
    regions: RegionInput
    question: str | None = None
    literal_question: bool = False  # the question is GAR's own text (<PromptK> names slot K): nothing is rewritten
    frames: int | None = None  # keyframes per window; None = the protocol's
    strategy: Strategy = "uniform"
    start: float | None = None  # seconds
    end: float | None = None
    window: float | None = None  # seconds per answer; None = one answer for the span
    protocol: str | None = None  # name or TOML file; None = the default protocol
    model: str | None = None  # preset, folder or hub id; None = configs/models.toml's default
    tracker: str | None = None  # preset or .pt; None = configs/trackers.toml's default
    stride: str = "auto"
    device: str = "auto"
    fps: float | None = None  # frame rate of a folder of frames (video files state their own)
    dtype: str = "auto"
    attn: str = DEFAULT_ATTENTION  # the language model's attention kernel
    generation: GenerationOptions = GenerationOptions()
    prompt: PromptOptions = PromptOptions()
    cache_dir: Path | None = None  # None = garvid's user cache
    use_cache: bool = True
    tracks: Path | None = None  # a tracks JSON (``garvid track``'s schema) used instead of tracking; replaces regions

    def input_paths(self) -> tuple[Path | str | None, ...]:
        """What the request reads from disk (names that are not paths are presets or hub ids)."""
        return (self.video, *self.regions.masks, self.tracks, self.protocol, self.model, self.tracker)
