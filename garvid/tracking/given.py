"""Tracks from a file instead of SAM2: ``garvid track`` output, or any file in its schema.

The file is checked against the video it is used with before any model loads: the same
frame size and frame count (so every frame index and every RLE mask size fits), object
ids GAR can name (1 to 5). Frame times are taken from the video, not the file.
:class:`GivenTracks` hands such tracks on as a tracker does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from garvid.errors import GarvidError
from garvid.files import read_input
from garvid.media.source import FrameSource, VideoInfo
from garvid.regions.prompts import MAX_OBJECTS, RegionPrompts
from garvid.tracking.interface import ProgressCallback
from garvid.tracking.tracks import Tracks


def read_tracks_file(path: Path, video: VideoInfo, timestamps: list[float]) -> Tracks:
    """The tracks in ``path``, validated against ``video``; GarvidError naming the file and field otherwise."""
    raw = read_input(Path(path), "--tracks")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise GarvidError(f"--tracks {path} is not a JSON file ({error})") from None
    try:
        tracks = Tracks.from_json(data)
    except GarvidError as error:
        raise GarvidError(f"--tracks {path}: {error}") from None
    made_for = tracks.video
    if (made_for.width, made_for.height) != (video.width, video.height):
        raise GarvidError(
            f"--tracks {path} is for a {made_for.width}x{made_for.height} video, {video.path} is {video.width}x{video.height}"
        )
    if made_for.num_frames != video.num_frames:
        raise GarvidError(f"--tracks {path} is for a video of {made_for.num_frames} frames, {video.path} has {video.num_frames}")
    wrong = [o for o in tracks.object_ids if not 1 <= o <= MAX_OBJECTS]
    if wrong:
        raise GarvidError(f"--tracks {path}: object id {wrong[0]} is not one GAR can name (1 to {MAX_OBJECTS})")
    tracks.times = [float(timestamps[f]) for f in tracks.frames]
    return tracks


def given_prompts(tracks: Tracks) -> RegionPrompts:
    """The tracks' objects as region prompts: their masks on the prompt frame (what plans a question)."""
    return RegionPrompts(frame=tracks.prompt_frame, masks={o: tracks.mask(o, tracks.prompt_frame) for o in tracks.object_ids})


class GivenTracks:
    """Tracks given with the request (``--tracks``), standing in for a tracker: nothing is
    tracked, detected or cached; :func:`garvid.tracking.provide.tracks_for` takes the asked
    objects on the file's frames in the needed range."""

    device_type = "cpu"  # nothing runs; ``--stride auto`` plans as for a CPU

    def __init__(self, tracks: Tracks):
        self.tracks = tracks

    @property
    def name(self) -> str:
        return self.tracks.tracker

    def track(
        self,
        video: FrameSource,
        prompts: RegionPrompts,
        frames: Sequence[int],
        progress: ProgressCallback | None = None,
        *,
        stride: int | None = None,
    ) -> Tracks:
        """The prompted objects on the file's own frames from the first to the last of ``frames``."""
        first, last = min(frames), max(frames)
        return self.tracks.select(prompts.object_ids, [f for f in self.tracks.frames if first <= f <= last])
