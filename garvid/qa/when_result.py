"""What ``garvid when`` produces: the intervals where a statement holds, every window scored,
and the request they answer. Plain data with no heavy imports (the CLI renders it without torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from garvid.qa.when_scan import Boundary, Interval, Scored


@dataclass
class WhenAnswer:
    """The result of one ``when`` request, with everything ``--format json`` reports."""

    statement: str
    scan: list[Scored]  # every window scored, in time order
    intervals: list[Interval]
    request: dict[str, Any]  # the video, the statement as GAR reads it, model, tracker, protocol, options
    timings: dict[str, float]
    frame_times: dict[int, float]  # time of every keyframe looked at
    shots: list[dict[str, Any]]  # the shots tracking stayed within (Shot.to_json each)
    objects: list[dict[str, Any]]  # per asked-about object: its id and presence intervals

    def to_json(self) -> dict[str, Any]:
        return {
            "statement": self.statement,
            "intervals": [
                {
                    "start": interval.start,
                    "end": interval.end,
                    "peak": round(interval.peak, 6),
                    "mean": round(interval.mean, 6),
                    "opened_by": self._boundary(interval.opens),
                    "closed_by": self._boundary(interval.closes),
                }
                for interval in self.intervals
            ],
            "curve": [self._window(window) for window in self.scan],
            "shots": self.shots,
            "objects": self.objects,
            "request": self.request,
            "timings": {name: round(seconds, 4) for name, seconds in self.timings.items()},
        }

    def _window(self, window: Scored) -> dict[str, Any]:
        return {
            "start": window.start,
            "end": window.end,
            "score": None if window.score is None else round(window.score, 6),
            "state": window.state,
            "keyframes": [{"frame": f, "time": self.frame_times[f]} for f in window.keyframes],
        }

    def _boundary(self, boundary: Boundary | None) -> dict[str, Any] | None:
        """The boundary's time and the two windows (with their keyframes) that decided it; None at the span's edge."""
        if boundary is None:
            return None
        return {"time": boundary.time, "before": self._window(boundary.before), "after": self._window(boundary.after)}
