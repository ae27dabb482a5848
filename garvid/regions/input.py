"""Region prompts as the user typed them (files and strings), before validation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from garvid.errors import OptionError
from garvid.media.source import VideoInfo
from garvid.regions.kinds import MaskArray, MaskFile, RegionPrompt, as_typed, mask_source, region_prompts
from garvid.regions.prompts import RegionPrompts, resolve_prompts

#: Seconds between re-detections of the ``--object`` names inside a shot, chosen by measuring
#: the detectors' cost (docs/performance.md#finding-objects-again).
DEFAULT_REDETECT = 5.0


@dataclass(frozen=True)
class RegionInput:
    """Region prompts as the user gave them (files and strings), before validation.

    ``masks`` holds mask PNG paths or in-memory masks: numpy arrays (one integer label map,
    or one boolean array per object, as with files), kept as :class:`MaskArray` (copied,
    compared and hashed by content). A mask, box or point may name its own frame
    (``mask.png@4.5``, ``10,20,200,220@f40``) and a box or point its object (``2=10,20,200,220``),
    see :mod:`garvid.regions.times`; ``frame`` is where the others lie. Their syntax is checked
    here, where the input is built; their frames when they are resolved against a video.
    """

    masks: Sequence[Path | MaskArray] = ()
    boxes: Sequence[str] = ()
    points: Sequence[str] = ()
    frame: int = 0
    resize_masks: bool = False
    objects: Sequence[str] = ()  # phrases (--object), found on the prompt frame by the detector
    detector: str | None = None  # detector preset or folder; None = configs/detectors.toml's default
    object_threshold: float | None = None  # None = the detector preset's threshold
    redetect: float | str | None = DEFAULT_REDETECT  # seconds between re-detections of the names in a shot; None/"off": never

    def __post_init__(self) -> None:
        threshold = self.object_threshold
        if threshold is not None and not 0.0 <= threshold < 1.0:  # nan fails both comparisons
            # an instance is chosen when it scores above the threshold, and no score exceeds 1
            raise OptionError("object_threshold", f"must lie in [0, 1) (an object is found when it scores above it, and no score exceeds 1), not {threshold:g}")
        object.__setattr__(self, "redetect", parse_redetect(self.redetect))
        if any(isinstance(mask, np.ndarray) for mask in self.masks):
            arrays = tuple(MaskArray(m) if isinstance(m, np.ndarray) else m for m in self.masks)
            object.__setattr__(self, "masks", arrays)  # frozen: an array is wrapped once, here
        self.prompts()  # a malformed @TIME or N= fails here, before any video opens

    @property
    def mask_files(self) -> list[Path]:
        """The masks read from disk (in-memory masks left out), without their ``@TIME``."""
        return [source.path for source in map(mask_source, self.masks) if isinstance(source, MaskFile)]

    def check_one_frame(self, what: str) -> None:
        """OptionError when a prompt names a frame (``@TIME``): ``what`` (a still image) has one."""
        timed = next((p for p in self.prompts() if p.at is not None), None)
        if timed is not None:
            raise OptionError(timed.group, f"{as_typed(timed)!r} names a time (@{timed.at}), but {what} has one frame: drop it")

    def prompts(self) -> list[RegionPrompt]:
        """Every prompt, one typed kind each (:mod:`garvid.regions.kinds`), in numbering order:
        what :meth:`resolve` checks and numbers, and what the tracking cache key digests."""
        return region_prompts(self.masks, self.boxes, self.points, self.objects)

    def resolve(self, info: VideoInfo, timestamps: np.ndarray | None = None) -> RegionPrompts:
        """Validate against the video and number the objects, each prompt on its frame; a time
        in seconds (``@4.5``) names the frame starting nearest to it among ``timestamps``
        (:meth:`~garvid.media.source.FrameSource.timestamps`; ``index / fps`` when not given)."""
        if timestamps is None:
            timestamps = np.arange(info.num_frames, dtype=np.float64) / info.fps
        return resolve_prompts(
            self.prompts(),
            frame=self.frame,
            size=(info.width, info.height),
            num_frames=info.num_frames,
            resize_masks=self.resize_masks,
            times=timestamps,
            duration=info.duration,
        )


def parse_redetect(value: float | str | None) -> float | None:
    """``--redetect``: positive finite seconds, or None / ``off`` (the names are found once)."""
    if value is None or (isinstance(value, str) and value.strip() == "off"):
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if isinstance(value, bool) or not (math.isfinite(seconds) and seconds > 0):
        raise OptionError("redetect", f"must be a positive number of seconds, or off; not {str(value)!r}")
    return seconds
