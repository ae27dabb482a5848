"""Tracking a whole request: open the video, validate the user's region prompts against it,
find ``--object`` phrases on the prompt frame, plan the tracked frames and track every object (``garvid track`` is exactly this stage).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from garvid.detection.checkpoints import check_detector
from garvid.detection.objects import detect_objects
from garvid.errors import GarvidError
from garvid.media.open import open_video
from garvid.regions.input import RegionInput
from garvid.tracking.frames import auto_stride, tracked_frames
from garvid.tracking.tracker import Sam2Tracker
from garvid.tracking.tracks import Tracks

ProgressCallback = Callable[[int, int], None]

#: Keyframes that ``--stride auto`` plans for when no question asks for a number.
DEFAULT_KEYFRAMES = 16


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

    def input_paths(self) -> tuple[Path | str, ...]:
        """What the request reads from disk (a tracker that is not a path is a preset)."""
        return (self.video, *self.regions.masks, self.tracker, self.regions.detector)


def parse_stride(stride: str) -> int | None:
    """A positive integer stride, or None for ``auto`` (chosen once the device is known)."""
    if stride == "auto":
        return None
    if not (str(stride).isascii() and str(stride).isdigit()) or int(stride) < 1:
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
        check_detector(request.regions)
        prompts, _ = detect_objects(video, prompts, request.regions, request.device)  # freed before SAM2 loads
        model = tracker or Sam2Tracker.from_preset(request.tracker, device=request.device)
        if stride is None:
            stride = auto_stride(video.info.num_frames, request.keyframes, model.device_type)
        frames = tracked_frames(video.info.num_frames, prompts.frame, stride)
        return model.track(video, prompts, frames, progress=progress)
