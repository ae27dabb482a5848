"""Tracks that serve later requests: reuse what is tracked, track only what is missing.

SAM2 tracks every object on its own: ``SAM2VideoPredictor`` keeps one output dict per
object, runs each object through its own ``_run_single_frame_inference`` call
(``batch_size=1``, its memory bank built from that object's outputs alone) and shares
only the frames' image features; objects would interact only through
``non_overlap_masks`` / ``non_overlap_masks_for_mem_enc``, which are off in the predictor
and in every SAM2.1 config garvid uses (``garvid.tracking.sam2_run`` steps objects one by
one the same way). So an object tracked alone gets the masks it gets when tracked with
others on the same frames (``tests/test_track_reuse.py`` checks it with the random
hiera-tiny), and tracks can be kept per object.

A request needs a regular grid of frames over a range (its span, extended to the prompt
frame). Frames tracked for an object on some grid serve a request when they hold the
prompt frame and at least one frame in every stride-long stretch of the range: a denser
grid serves a sparser request, as keyframes are picked among tracked frames anyway. For
several objects the frames are those they all have (keyframes replay every object), so
objects whose frames each serve alone but share too few are tracked on the request's grid.
Objects whose frames do not serve are tracked on the request's own grid (SAM2 propagates
from the prompt frame, so the grid always reaches back to it) and merged into what was
there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Collection, Mapping, Sequence

from garvid.tracking.frames import tracked_frames
from garvid.tracking.tracks import Tracks, combine, common_gap

TrackFunction = Callable[[list[int], list[int]], Tracks]
"""``track(object_ids, frames)``: track those objects on those frames (loads SAM2 on first call)."""


@dataclass(frozen=True)
class TrackingNeed:
    """The frames a request needs tracked: every ``stride``-th frame of ``[first, stop)`` plus the prompt frame."""

    first: int
    stop: int  # one past the last frame
    stride: int
    prompt_frame: int
    num_frames: int

    def __post_init__(self) -> None:
        self.grid  # noqa: B018 - a range or stride that does not fit the video fails here, before any model loads

    @property
    def grid(self) -> list[int]:
        """The frames to track when nothing is cached."""
        return tracked_frames(self.num_frames, self.prompt_frame, self.stride, self.first, self.stop)

    def in_range(self, frames: Collection[int]) -> list[int]:
        return sorted(f for f in frames if self.first <= f < self.stop)

    def served_by(self, frames: Collection[int]) -> bool:
        """True when ``frames`` hold the prompt frame and a frame in every stride-long stretch of the range."""
        if self.prompt_frame not in frames:
            return False
        cells = {(f - self.first) // self.stride for f in self.in_range(frames)}
        return len(cells) == math.ceil((self.stop - self.first) / self.stride)


def merge(old: Tracks, new: Tracks) -> Tracks:
    """One object's observations from two runs on all their frames; ``new``'s win where both tracked a frame."""
    (object_id,) = new.object_ids
    by_frame = {f: (t, o) for f, t, o in zip(old.frames, old.times, old.observations[object_id])}
    by_frame.update({f: (t, o) for f, t, o in zip(new.frames, new.times, new.observations[object_id])})
    frames = sorted(by_frame)
    return Tracks(
        video=new.video,
        object_ids=[object_id],
        frames=frames,
        times=[by_frame[f][0] for f in frames],
        observations={object_id: [by_frame[f][1] for f in frames]},
        tracker=new.tracker,
        stride=common_gap(frames),
        device=new.device,
        prompt_frame=new.prompt_frame,
        shots=new.shots,
    )


@dataclass
class Reuse:
    """What :func:`reuse_or_track` found: the request's tracks and what changed."""

    tracks: Tracks  # the asked objects on the tracked frames of the range they all share
    updated: dict[int, Tracks]  # per object tracked now: its merged tracks, to store
    tracked: list[int]  # the objects SAM2 tracked for this request (empty: all reused)


def reuse_or_track(
    need: TrackingNeed, object_ids: Sequence[int], cached: Mapping[int, Tracks | None], track: TrackFunction
) -> Reuse:
    """The tracks of ``object_ids`` for ``need``, tracking only the objects the ``cached`` ones do not serve.

    When the frames every object has in common serve the need, nothing is tracked.
    Otherwise each object that lacks a frame of the need's grid is tracked on that grid,
    so afterwards they all share the grid.
    """

    def frames_of(object_id: int) -> set[int]:
        entry = cached.get(object_id)
        return set(entry.frames) if entry is not None else set()

    shared = set.intersection(*(frames_of(o) for o in object_ids))
    grid = need.grid
    missing = [] if need.served_by(shared) else [o for o in object_ids if not set(grid) <= frames_of(o)]
    updated: dict[int, Tracks] = {}
    if missing:
        fresh = track(missing, grid)
        for object_id in missing:
            part = fresh.select([object_id], fresh.frames)
            old = cached.get(object_id)
            updated[object_id] = merge(old, part) if old is not None else part
    entries = [updated.get(o) or cached[o] for o in object_ids]
    frames = need.in_range(set.intersection(*(set(e.frames) for e in entries)))
    return Reuse(combine(entries, frames, object_ids), updated, missing)
