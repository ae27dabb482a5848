"""The SAM2 tracker: prompts on one frame in, per-frame masks of every object out.

torch and sam2 are imported only when a tracker is built, so importing this module (and
``garvid --help``) stays fast and leaves hydra alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from garvid.media.source import FrameSource
from garvid.regions.prompts import RegionPrompts
from garvid.tracking.interface import ProgressCallback
from garvid.tracking.tracks import ObjectObservation, Tracks, common_gap

if TYPE_CHECKING:
    import torch
    from sam2.sam2_video_predictor import SAM2VideoPredictor


class Sam2Tracker:
    """A SAM2 video predictor on one device (a :class:`~garvid.tracking.interface.Tracker`).

    Build it with :meth:`from_preset`, or by preset name with
    :func:`garvid.tracking.backends.make_tracker` (the ``sam2`` backend).
    """

    def __init__(self, predictor: SAM2VideoPredictor, name: str):
        self.predictor = predictor
        self.name = name

    @classmethod
    def from_preset(cls, name_or_path: str | Path, device: str = "auto", config: str | None = None) -> Sam2Tracker:
        """A preset from ``configs/trackers.toml`` or a local SAM2 ``.pt`` checkpoint.

        ``config`` gives a local checkpoint's architecture (a preset name or a sam2 config
        name); ``device`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``. Real presets load
        their checkpoint from the Hugging Face cache, downloading it once when online.
        """
        from garvid.devices import resolve_device
        from garvid.tracking.checkpoints import resolve_tracker
        from garvid.tracking.model import build_predictor

        target = resolve_device(device)  # before any download: a bad device fails fast
        spec = resolve_tracker(name_or_path, config)
        return cls(build_predictor(spec, target), spec.name)

    @property
    def device(self) -> torch.device:
        return self.predictor.device

    @property
    def device_type(self) -> str:
        """``cpu`` or ``cuda``: what :func:`auto_stride` plans for."""
        return self.device.type

    def track(
        self,
        video: FrameSource,
        prompts: RegionPrompts,
        frames: Sequence[int],
        progress: ProgressCallback | None = None,
        *,
        stride: int | None = None,
    ) -> Tracks:
        """Track every prompted object through ``frames`` (ascending, holding every prompt frame).

        Each mask becomes RLE as soon as SAM2 yields its frame; on a prompt frame,
        mask-prompted objects keep their given mask. ``stride`` is recorded in
        the result; by default it is the most common gap between tracked frames.
        ``progress(done, total)`` is called after every tracked frame.
        """
        from garvid.tracking.sam2_run import TrackingSession

        session = TrackingSession(self.predictor, video, frames)
        session.add_prompts(prompts)
        object_ids, total = session.object_ids, len(session.frames)
        per_index: dict[int, list[ObjectObservation]] = {}
        if progress is not None:
            progress(0, total)
        given_masks = {session.frames.index(p.frame): p.masks for p in prompts.per_frame() if p.masks}
        for index, masks, scores in session.propagate():
            rows = list(masks.cpu().numpy())
            if index in given_masks:
                # SAM2 hands a mask prompt back through logits at a quarter of its input size,
                # so edges move by up to one such cell (5 px on a 1280 px video at 1024 px,
                # 20 px at 256 px); the given mask is exact.
                given = given_masks[index]
                rows = [np.asarray(given.get(i, row), bool) for i, row in zip(object_ids, rows)]
            per_index[index] = [ObjectObservation.from_mask(m, s) for m, s in zip(rows, scores.cpu().numpy())]
            if progress is not None:
                progress(len(per_index), total)
        timestamps = video.timestamps()
        return Tracks(
            video=video.info,
            object_ids=object_ids,
            frames=session.frames,
            times=[float(timestamps[f]) for f in session.frames],
            observations={
                object_id: [per_index[i][k] for i in range(total)] for k, object_id in enumerate(object_ids)
            },
            tracker=self.name,
            stride=stride if stride is not None else common_gap(session.frames),
            device=str(self.device),
            prompt_frame=prompts.frame,
        )

