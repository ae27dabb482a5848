"""Trackers by name: a preset's ``backend`` picks the code that builds it.

A preset in ``configs/trackers.toml`` names its backend (``backend = "sam2"``, the default
when the key is absent); :data:`BACKENDS` maps each backend name to a builder,
``builder(name_or_path, device) -> Tracker``. A local ``.pt`` file is a SAM2 checkpoint.
A new tracker family is one builder registered here (:func:`register_backend`) and its
presets in the TOML; every command builds its tracker through :func:`make_tracker`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from garvid.errors import CheckpointError
from garvid.presets import get_preset
from garvid.tracking.interface import ProgressCallback, Tracker

if TYPE_CHECKING:
    from garvid.media.source import FrameSource
    from garvid.regions.prompts import RegionPrompts
    from garvid.tracking.tracks import Tracks

TrackerBuilder = Callable[[str, str], Tracker]
"""``builder(name_or_path, device)``: the tracker of a preset (or of a file the backend reads) on ``device``."""

DEFAULT_BACKEND = "sam2"


def _build_sam2(name_or_path: str, device: str) -> Tracker:
    from garvid.tracking.tracker import Sam2Tracker  # torch and sam2 load only when one is built

    return Sam2Tracker.from_preset(name_or_path, device=device)


BACKENDS: dict[str, TrackerBuilder] = {DEFAULT_BACKEND: _build_sam2}


def register_backend(name: str, builder: TrackerBuilder) -> None:
    """Make ``backend = "<name>"`` in a tracker preset build its tracker with ``builder``."""
    BACKENDS[name] = builder


def tracker_backend(name_or_path: str | Path) -> str:
    """The backend of a preset (``sam2`` when it names none); ``sam2`` for a local ``.pt`` checkpoint."""
    text = str(name_or_path)
    if Path(text).suffix == ".pt" or Path(text).is_file():
        return DEFAULT_BACKEND
    return str(get_preset("trackers", text).get("backend", DEFAULT_BACKEND))


def make_tracker(name_or_path: str | Path, device: str = "auto") -> Tracker:
    """The tracker of a preset from ``configs/trackers.toml`` (or of a local SAM2 ``.pt``) on ``device``.

    The preset's ``backend`` key chooses the builder in :data:`BACKENDS` (``sam2`` when
    absent); an unknown preset or backend is a clear error. A test or plugin adds a
    backend with :func:`register_backend` and a preset naming it in the presets table.
    """
    backend = tracker_backend(name_or_path)
    if backend not in BACKENDS:
        raise CheckpointError(
            f"tracker preset {str(name_or_path)!r} names backend {backend!r}, which garvid does not have "
            f"(backends: {', '.join(sorted(BACKENDS))})"
        )
    return BACKENDS[backend](str(name_or_path), device)


class LazyTracker:
    """A tracker built by :func:`make_tracker` on first use, so a run whose tracks are all
    cached never loads it; :meth:`free` drops it again."""

    def __init__(self, name: str, device: str = "auto"):
        self.name, self.device_name = name, device
        self._tracker: Tracker | None = None

    @property
    def device_type(self) -> str:
        if self._tracker is not None:
            return self._tracker.device_type
        from garvid.devices import resolve_device

        return resolve_device(self.device_name).type

    def track(
        self,
        video: FrameSource,
        prompts: RegionPrompts,
        frames: Sequence[int],
        progress: ProgressCallback | None = None,
        *,
        stride: int | None = None,
    ) -> Tracks:
        if self._tracker is None:
            self._tracker = make_tracker(self.name, self.device_name)
        return self._tracker.track(video, prompts, frames, progress, stride=stride)

    def free(self) -> None:
        """Drop the network and give its memory back (CUDA included)."""
        from garvid.devices import release_memory  # torch: imported only by a run that tracked

        self._tracker = None
        release_memory()
