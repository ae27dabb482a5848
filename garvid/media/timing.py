"""Times to frames: which frame a time in seconds names.

A time names the frame that starts nearest to it; a time within half a frame (of the mean
frame length, ``duration / len(times)``) before a frame's start is that frame. Shot lists
(:mod:`garvid.shots.reading`) and prompts at a time (``--box ...@4.5``) both read times this way.
"""

from __future__ import annotations

import numpy as np


def half_frame(times: np.ndarray, duration: float) -> float:
    """Half the mean frame length of a video whose ``len(times)`` frames last ``duration`` seconds."""
    return 0.5 * duration / len(times)


def frame_at(times: np.ndarray, seconds: float, duration: float) -> int:
    """The frame that starts nearest to ``seconds``, for frames starting at ``times`` (seconds,
    ascending) that last ``duration`` seconds in all; ``len(times)`` at or near the video's end."""
    return int(np.searchsorted(times, seconds - half_frame(times, duration)))
