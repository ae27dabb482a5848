"""When each object is on screen: the time intervals where it is tracked and visible.

An interval is a run of consecutive tracked frames on which the object's mask is not empty,
inside one shot: a tracked frame where the object is not visible (occluded, gone, or not
tracked at all because no prompt reaches that shot) ends the run, and so does a cut, even
when the object is visible on both sides of it (a shot change is never one continuous
presence). An interval goes from its first visible tracked frame to its last, so its times
are tracked frames' times; with a stride of N the true presence may start up to N - 1
frames earlier and end up to N - 1 frames later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from garvid.shots.shots import Shots


@dataclass(frozen=True)
class Presence:
    """An object visible on tracked frames ``first_frame`` to ``last_frame`` (both tracked, inclusive)."""

    first_frame: int
    last_frame: int
    start: float  # seconds: the time of first_frame
    end: float  # seconds: the time of last_frame

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "first_frame": self.first_frame, "last_frame": self.last_frame}


def presence(frames: Sequence[int], times: Sequence[float], visible: Sequence[bool], shots: Shots | None) -> list[Presence]:
    """The intervals where an object is tracked and visible, in time order: ``visible[i]`` says
    whether it is on tracked frame ``frames[i]`` (at ``times[i]`` seconds); ``shots`` None is one shot."""
    shot_of = (lambda frame: 0) if shots is None else shots.index_of
    intervals: list[Presence] = []
    run: list[tuple[int, float]] = []  # (frame, time) of the current run's visible frames
    for frame, time, seen in zip(frames, times, visible):
        if run and (not seen or shot_of(frame) != shot_of(run[-1][0])):
            intervals.append(Presence(run[0][0], run[-1][0], run[0][1], run[-1][1]))
            run = []
        if seen:
            run.append((frame, time))
    if run:
        intervals.append(Presence(run[0][0], run[-1][0], run[0][1], run[-1][1]))
    return intervals
