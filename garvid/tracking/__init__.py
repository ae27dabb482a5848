"""Object tracking: region prompts on one frame -> masks on every tracked frame.

A tracker is anything with the small :class:`Tracker` interface (SAM2's is
:class:`Sam2Tracker`); :func:`make_tracker` builds one from a preset, whose ``backend``
picks the code. :func:`garvid.tracking.provide.tracks_for` is the entry a request goes
through (cache, detector, loading and freeing). Importing this package is cheap; torch and
sam2 load when a tracker is built.
"""

from garvid.tracking.backends import LazyTracker, make_tracker
from garvid.tracking.frames import auto_stride, tracked_frames
from garvid.tracking.interface import Tracker
from garvid.tracking.tracker import Sam2Tracker
from garvid.tracking.tracks import ObjectObservation, Tracks

__all__ = [
    "LazyTracker",
    "ObjectObservation",
    "Sam2Tracker",
    "Tracker",
    "Tracks",
    "auto_stride",
    "make_tracker",
    "tracked_frames",
]
