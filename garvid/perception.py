"""The perception front end: open a video, read the user's region prompts, track them.

This is everything before the language model; ``garvid track`` is exactly this stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from garvid.errors import GarvidError
from garvid.regions import RegionPrompts, build_region_prompts
from garvid.tracking import Sam2Tracker, Tracks, auto_stride, tracked_frames
from garvid.video import VideoInfo, open_video

ProgressCallback = Callable[[int, int], None]

#: Keyframes that ``--stride auto`` plans for when no question asks for a number.
DEFAULT_KEYFRAMES = 16


@dataclass(frozen=True)
class RegionInput:
    """Region prompts as the user gave them (files and strings), before validation."""

    masks: Sequence[Path] = ()
    boxes: Sequence[str] = ()
    points: Sequence[str] = ()
    frame: int = 0
    resize_masks: bool = False

    def resolve(self, info: VideoInfo) -> RegionPrompts:
        """Validate against the video and number the objects."""
        return build_region_prompts(
            mask_paths=self.masks,
            boxes=self.boxes,
            points=self.points,
            frame=self.frame,
            size=(info.width, info.height),
            num_frames=info.num_frames,
            resize_masks=self.resize_masks,
        )


@dataclass(frozen=True)
class TrackRequest:
    """What to track and how: the library-side twin of ``garvid track``'s options."""

    video: Path
    regions: RegionInput
    tracker: str
    stride: str = "auto"
    keyframes: int = DEFAULT_KEYFRAMES
    device: str = "auto"
    fps: float | None = None  # frame rate of a folder of frames (video files state their own)


def parse_stride(stride: str) -> int | None:
    """A positive integer stride, or None for ``auto`` (chosen once the device is known)."""
    if stride == "auto":
        return None
    if not str(stride).isdigit() or int(stride) < 1:
        raise GarvidError(f"--stride must be a positive integer or 'auto', not {stride!r}")
    return int(stride)


def track_video(
    request: TrackRequest,
    *,
    tracker: Sam2Tracker | None = None,
    progress: ProgressCallback | None = None,
) -> Tracks:
    """Decode, validate prompts and track every object of ``request`` through the video."""
    with open_video(request.video, fps=request.fps) as video:
        prompts = request.regions.resolve(video.info)
        stride = parse_stride(request.stride)  # bad input fails before the model loads
        model = tracker or Sam2Tracker.from_preset(request.tracker, device=request.device)
        if stride is None:
            stride = auto_stride(video.info.num_frames, request.keyframes, model.device_type)
        frames = tracked_frames(video.info.num_frames, prompts.frame, stride)
        return model.track(video, prompts, frames, progress=progress)
