"""Object tracking with SAM2: region prompts on one frame -> masks on every tracked frame.

Importing this package is cheap; torch and sam2 load when a tracker is built.
"""

from garvid.tracking.frames import auto_stride, tracked_frames
from garvid.tracking.tracker import Sam2Tracker
from garvid.tracking.tracks import ObjectObservation, Tracks

__all__ = ["ObjectObservation", "Sam2Tracker", "Tracks", "auto_stride", "tracked_frames"]
