"""Region prompts as the user typed them (files and strings), before validation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from garvid.media.source import VideoInfo
from garvid.regions.prompts import RegionPrompts, build_region_prompts


@dataclass(frozen=True)
class RegionInput:
    """Region prompts as the user gave them (files and strings), before validation."""

    masks: Sequence[Path] = ()
    boxes: Sequence[str] = ()
    points: Sequence[str] = ()
    frame: int = 0
    resize_masks: bool = False
    objects: Sequence[str] = ()  # phrases (--object), found on the prompt frame by the detector
    detector: str | None = None  # detector preset or folder; None = configs/detectors.toml's default
    object_threshold: float | None = None  # None = the detector preset's threshold

    def resolve(self, info: VideoInfo) -> RegionPrompts:
        """Validate against the video and number the objects."""
        return build_region_prompts(
            mask_paths=self.masks,
            boxes=self.boxes,
            points=self.points,
            objects=self.objects,
            frame=self.frame,
            size=(info.width, info.height),
            num_frames=info.num_frames,
            resize_masks=self.resize_masks,
        )
