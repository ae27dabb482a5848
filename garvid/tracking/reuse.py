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
frames in the shots it touches). Frames tracked for an object on some grid serve a request when they hold the
prompt frames in the range and at least one frame in every stride-long stretch of it: a denser
grid serves a sparser request, as keyframes are picked among tracked frames anyway. For
several objects the frames are those they all have (keyframes replay every object), so
objects whose frames each serve alone but share too few are tracked on the request's grid.
Objects whose frames do not serve are tracked on the request's own grid (SAM2 propagates
from the prompt frames, so the grid always holds them) and merged into what was
there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Collection, Mapping, Sequence

from garvid.errors import GarvidError
from garvid.regions.prompts import RegionPrompts
from garvid.shots.shots import Shots
from garvid.tracking.tracks import Tracks, combine, common_gap

TrackFunction = Callable[[list[int], list[int]], Tracks]
"""``track(object_ids, frames)``: track those objects on those frames (loads SAM2 on first call)."""


@dataclass(frozen=True)
class TrackingNeed:
    """The frames a request needs tracked: every ``stride``-th frame of ``[first, stop)`` plus
    the prompt frames inside that range (``prompt_frames``; default: ``prompt_frame`` alone)."""

    first: int
    stop: int  # one past the last frame
    stride: int
    prompt_frame: int
    num_frames: int
    prompt_frames: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.prompt_frames:
            object.__setattr__(self, "prompt_frames", (self.prompt_frame,))
        self.grid  # noqa: B018 - a range or stride that does not fit the video fails here, before any model loads

    @classmethod
    def for_span(
        cls, first: int, stop: int, stride: int, prompts: RegionPrompts, num_frames: int, shots: Shots | None
    ) -> TrackingNeed:
        """The need of frames ``[first, stop)``, extended to reach the prompt frames that can
        reach it: those in the shots the range touches (tracking never crosses a cut, so a
        prompt in another shot cannot), or every prompt frame when ``shots`` is None."""
        frames = prompts.prompt_frames
        if shots is not None:
            touched = range(shots.index_of(first), shots.index_of(stop - 1) + 1)
            frames = [f for f in frames if shots.index_of(f) in touched]
        return cls(
            min([first, *frames]), max([stop, *(f + 1 for f in frames)]), stride, prompts.frame, num_frames, tuple(prompts.prompt_frames)
        )

    @property
    def grid(self) -> list[int]:
        """The frames to track when nothing is cached."""
        if self.stride < 1:
            raise GarvidError(f"stride must be a positive integer, got {self.stride}")
        if not 0 <= self.first < self.stop <= self.num_frames:
            raise GarvidError(f"frame range {self.first}..{self.stop} does not fit the video's {self.num_frames} frames")
        return sorted({*range(self.first, self.stop, self.stride), *self.prompts_in_range})

    @property
    def prompts_in_range(self) -> list[int]:
        return self.in_range(self.prompt_frames)

    def in_range(self, frames: Collection[int]) -> list[int]:
        return sorted(f for f in frames if self.first <= f < self.stop)

    def served_by(self, frames: Collection[int]) -> bool:
        """True when ``frames`` hold the prompt frames in the range and a frame in every stride-long stretch of it."""
        if not set(self.prompts_in_range) <= set(frames):
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
