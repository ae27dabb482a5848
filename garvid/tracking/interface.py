"""What every tracker offers: a name, a device type, and ``track``.

SAM2's own video API is ``init_state`` -> ``add_new_mask`` / ``add_new_points_or_box`` ->
``propagate_in_video``; garvid's trackers expose that whole run as one call, with prompts
already on the prompt frame and the frames to visit chosen by the caller
(:mod:`garvid.tracking.frames`). Implementations: :class:`~garvid.tracking.tracker.Sam2Tracker`
(SAM2), :class:`~garvid.tracking.backends.LazyTracker` (any preset, built on first use),
:class:`~garvid.tracking.given.GivenTracks` (a ``--tracks`` file) and the evaluation's
given masks. Build one by preset name with :func:`garvid.tracking.backends.make_tracker`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    from garvid.media.source import FrameSource
    from garvid.regions.prompts import RegionPrompts
    from garvid.tracking.tracks import Tracks

ProgressCallback = Callable[[int, int], None]
"""``progress(done, total)``: tracked frames so far, out of all to track."""


@runtime_checkable
class Tracker(Protocol):
    """Prompts on one frame in, every prompted object's mask on every tracked frame out."""

    @property
    def name(self) -> str:
        """What results and cache keys record: a preset name or a checkpoint as the user gave it."""
        ...

    @property
    def device_type(self) -> str:
        """``cpu`` or ``cuda``: what ``--stride auto`` plans for (:func:`garvid.tracking.frames.auto_stride`)."""
        ...

    def track(
        self,
        video: FrameSource,
        prompts: RegionPrompts,
        frames: Sequence[int],
        progress: ProgressCallback | None = None,
        *,
        stride: int | None = None,
    ) -> Tracks:
        """Track every object of ``prompts`` (masks, boxes or points on ``prompts.frame``; names
        must be found first) through ``frames``, ascending and holding the prompt frame.

        The result has one observation per object per frame it tracked (a tracker of given
        masks may return its own frames instead); ``stride`` is recorded in it (default:
        the most common gap between ``frames``); ``progress`` is called as frames are done.
        """
        ...
