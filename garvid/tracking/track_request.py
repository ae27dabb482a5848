"""Tracking a whole request: open the video, validate the user's region prompts against it,
find its shots, find ``--object`` phrases, plan the tracked frames and track every object
within its shots (``garvid track`` is exactly this stage).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from garvid.detection.checkpoints import check_detector
from garvid.errors import GarvidWarning, OptionError
from garvid.options import TrackingOptions, check_device_name
from garvid.media.open import open_video_with
from garvid.regions.input import RegionInput
from garvid.tracking.cache import request_cache
from garvid.tracking.frames import auto_stride
from garvid.tracking.interface import ProgressCallback, Tracker
from garvid.tracking.provide import tracks_for
from garvid.tracking.reuse import TrackingNeed
from garvid.tracking.shot_cache import request_shots
from garvid.tracking.tracks import Tracks

#: Keyframes that ``--stride auto`` plans for when no question asks for a number.
DEFAULT_KEYFRAMES = 16


@dataclass(frozen=True)
class TrackRequest:
    """What to track and how: the library-side twin of ``garvid track``'s options."""

    video: Path
    regions: RegionInput
    tracking: TrackingOptions = field(default_factory=TrackingOptions)
    keyframes: int = DEFAULT_KEYFRAMES  # what ``stride="auto"`` plans for
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.keyframes < 1:
            raise OptionError("frames", f"must be at least 1, not {self.keyframes}")  # keyframes per answer, as in KeyframeOptions
        check_device_name(self.device)

    def input_paths(self) -> tuple[Path | str | None, ...]:
        """What the request reads from disk (a tracker that is not a path is a preset)."""
        return (self.video, *self.regions.mask_files, self.tracking.tracker, self.regions.detector)


def track_video(
    request: TrackRequest,
    *,
    tracker: Tracker | None = None,
    progress: ProgressCallback | None = None,
) -> Tracks:
    """Decode, validate prompts and track every object of ``request`` through the whole video
    (through :func:`~garvid.tracking.provide.tracks_for`, with the cache the request's
    tracking options name, as ``ask`` uses it): ``tracker``, or the request's built after the
    detector is freed, only if some object's cached tracks do not serve."""
    def report(message: str) -> None:
        warnings.warn(message, GarvidWarning, stacklevel=3)

    with open_video_with(request.video, request.tracking) as video:
        info = video.info
        prompts = request.regions.resolve(info, video.timestamps())
        check_detector(request.regions)
        stride = request.tracking.stride
        if stride == "auto":
            from garvid.devices import resolve_device  # torch: not for --help

            device_type = tracker.device_type if tracker is not None else resolve_device(request.device).type
            stride = auto_stride(info.num_frames, request.keyframes, device_type)
        _, shots = request_shots(request.video, request.tracking, on_problem=report)
        need = TrackingNeed.for_span(0, info.num_frames, stride, prompts, info.num_frames, shots)
        chosen = tracker if tracker is not None else request.tracking.tracker
        cache = request_cache(request.tracking, on_problem=report)
        provided = tracks_for(video, request.regions, prompts, need, cache, chosen, shots=shots, device=request.device, progress=progress)
        return provided.tracks
