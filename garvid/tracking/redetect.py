"""Objects found again (``--redetect``): on which frames the detector looks for the
``--object`` phrases, so that an object that leaves the picture, or a new shot, gets a new
prompt where it shows again.

The detector runs on the first frame of every shot (the first analysed frame for the shot
that starts before it) and then every ``--redetect`` seconds inside the shot
(:func:`detection_frames`); :func:`garvid.detection.objects.detect_objects` turns each
instance found into a prompt of its object on that frame. Which instance is which object,
when one phrase names several (``--object cup --object cup``): on a shot's first detection
frame they go by score rank, as on the prompt frame (the best to the first ``cup``); on the
shot's later detection frames each object takes the instance whose box overlaps its last
found box in the shot most (the assignment with the largest summed IoU), and objects not
found yet in the shot, or overlapping nothing, take the instances left by rank
(:func:`garvid.detection.selection.match_instances`). No identity crosses a cut: a new shot
starts again by rank.
"""

from __future__ import annotations

from garvid.shots.shots import Shots


def redetect_step(seconds: float | None, fps: float) -> int | None:
    """``--redetect`` seconds as a frame step at ``fps`` (rounded, at least 1); None stays off."""
    if seconds is None:
        return None
    return max(1, round(seconds * fps))


def detection_frames(shots: Shots, first: int, stop: int, every: int | None) -> list[int]:
    """The frames of ``first`` to ``stop - 1`` the detector runs on: the first of every shot
    there (``first`` itself for the shot that starts before it), and, with ``every``, each
    ``every``-th frame after it inside the shot. Ascending."""
    if every is not None and every < 1:
        raise ValueError(f"every must be at least 1, not {every}")
    frames: list[int] = []
    for shot in shots:
        begin, end = max(shot.start, first), min(shot.end, stop)
        if begin < end:
            frames.extend(range(begin, end, every) if every else [begin])
    return frames
