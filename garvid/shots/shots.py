"""The shots of a video: consecutive frame ranges that together cover every frame."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

from garvid.errors import GarvidError


@dataclass(frozen=True)
class Shot:
    """Frames ``start`` to ``end - 1`` (``end`` exclusive), from ``start_time`` to ``end_time`` seconds.

    ``end_time`` is the start of frame ``end``, or the video's duration for the last shot.
    """

    start: int
    end: int
    start_time: float
    end_time: float

    @property
    def num_frames(self) -> int:
        return self.end - self.start

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start_time,
            "end": self.end_time,
            "start_frame": self.start,
            "end_frame": self.end,
            "num_frames": self.num_frames,
        }


@dataclass(frozen=True)
class Shots:
    """A video's shots, in order, covering frames ``0 .. num_frames - 1`` without gap or overlap.

    Build it with :meth:`from_cuts` from the frames where a new shot starts; a video
    without a cut is one shot.
    """

    shots: tuple[Shot, ...]

    def __post_init__(self) -> None:
        if not self.shots or self.shots[0].start != 0:
            raise ValueError("shots must start at frame 0")
        for before, after in zip(self.shots, self.shots[1:]):
            if after.start != before.end:
                raise ValueError(f"shots must follow each other: {before.end} then {after.start}")
        if any(shot.end <= shot.start for shot in self.shots):
            raise ValueError("every shot must have a frame")

    @classmethod
    def from_cuts(cls, cuts: Iterable[int], times: Sequence[float], duration: float) -> Shots:
        """The shots of a video whose frame ``i`` starts at ``times[i]`` and which lasts
        ``duration`` seconds, cut before each frame of ``cuts`` (0 and repeats are ignored)."""
        num_frames = len(times)
        starts = sorted({int(cut) for cut in cuts} - {0})
        if starts and not 0 < starts[-1] < num_frames:
            raise GarvidError(f"a cut at frame {starts[-1]} is outside the video's {num_frames} frames")
        bounds = [0, *starts, num_frames]
        return cls(
            tuple(
                Shot(start, end, float(times[start]), float(times[end]) if end < num_frames else float(duration))
                for start, end in zip(bounds, bounds[1:])
            )
        )

    @classmethod
    def from_json(cls, data: Any) -> Shots:
        """Read :meth:`to_json` back; GarvidError naming what is wrong."""
        if not isinstance(data, list) or not data:
            raise GarvidError("must be a non-empty list of shots")
        shots = []
        for position, entry in enumerate(data):
            fields = ("start_frame", "end_frame", "start", "end")
            if not isinstance(entry, dict) or not all(key in entry for key in fields):
                raise GarvidError(f"[{position}] must hold {', '.join(fields)}")
            frames, times = (entry["start_frame"], entry["end_frame"]), (entry["start"], entry["end"])
            if not all(type(v) is int for v in frames) or not all(type(v) in (int, float) for v in times):
                raise GarvidError(f"[{position}] must have integer frames and numeric times")
            shots.append(Shot(*frames, float(times[0]), float(times[1])))
        try:
            return cls(tuple(shots))
        except ValueError as error:
            raise GarvidError(str(error)) from None

    @property
    def num_frames(self) -> int:
        return self.shots[-1].end

    @property
    def cuts(self) -> list[int]:
        """The first frame of every shot but the first."""
        return [shot.start for shot in self.shots[1:]]

    def index_of(self, frame: int) -> int:
        """The index of the shot that holds ``frame``."""
        if not 0 <= frame < self.num_frames:
            raise IndexError(f"frame {frame} is outside the video's {self.num_frames} frames")
        return bisect.bisect_right(self.cuts, frame)

    def to_json(self) -> list[dict[str, Any]]:
        return [shot.to_json() for shot in self.shots]

    def __len__(self) -> int:
        return len(self.shots)

    def __iter__(self) -> Iterator[Shot]:
        return iter(self.shots)
