"""Every prompt resolved to a mask on the prompt frame (``garvid segment``, and objects by
name or box on a still image): masks as given, ``--object`` phrases through the detector,
boxes and points (and Grounding DINO's boxes) through SAM2's prompt encoder. The detector
is freed before SAM2 loads.

One frame is segmented: the prompt frame, or the one frame every prompt names (``--box
...@f40`` segments frame 40); prompts on several frames are refused, as are times on a still image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from garvid.detection.checkpoints import check_detector
from garvid.detection.objects import detect_objects
from garvid.errors import RegionError
from garvid.media.source import FrameSource
from garvid.media.still import StillImage
from garvid.regions.input import RegionInput
from garvid.tracking.interface import Tracker
from garvid.tracking.provide import tracks_for
from garvid.tracking.reuse import TrackingNeed


@dataclass(frozen=True)
class SegmentedObject:
    """One object on the prompt frame, and where its mask came from."""

    id: int
    source: str  # "mask", "box", "point" or "object"
    mask: np.ndarray  # (H, W) bool
    score: float | None  # the detector's for objects, SAM2's for boxes and points, None for masks
    phrase: str | None = None  # for objects


@dataclass(frozen=True)
class Segmentation:
    frame: int
    objects: list[SegmentedObject]

    @property
    def masks(self) -> dict[int, np.ndarray]:
        return {o.id: o.mask for o in self.objects}


def segment_prompt_frame(video: FrameSource, regions: RegionInput, *, tracker: Tracker | str, device: str = "auto") -> Segmentation:
    """Resolve every prompt of ``regions`` on its frame of ``video`` to a mask (``tracker`` is
    a loaded :class:`Tracker`, or a preset name or ``.pt`` built for boxes and points only)."""
    if isinstance(video, StillImage):
        regions.check_one_frame("an image")
    prompts = regions.resolve(video.info, video.timestamps())
    if prompts.anchors:
        frames = ", ".join(str(f) for f in prompts.prompt_frames)
        raise RegionError(f"the prompts lie on frames {frames}, but segmenting writes one frame's masks: segment each frame on its own")
    check_detector(regions)
    sources = {
        **{i: "mask" for i in prompts.masks},
        **{i: "box" for i in prompts.boxes},
        **{i: "point" for i in prompts.points},
        **{i: "object" for i in prompts.objects},
    }
    phrases = {i: name.phrase for i, name in prompts.objects.items()}
    prompts, detections = detect_objects(video, prompts, regions, device)
    scores: dict[int, float | None] = {d.object_id: d.score for d in detections}
    masks = dict(prompts.masks)
    prompted = prompts.only([*prompts.boxes, *prompts.points])
    if prompted.object_ids:
        frame = prompts.frame  # the tracker (when built by name, freed after) sees the prompt frame alone
        need = TrackingNeed(frame, frame + 1, 1, frame, video.info.num_frames)
        tracks = tracks_for(video, regions, prompted, need, None, tracker, device=device).tracks
        for object_id in prompted.object_ids:
            masks[object_id] = tracks.mask(object_id, prompts.frame)
            scores.setdefault(object_id, tracks.observation(object_id, prompts.frame).score)
    objects = [
        SegmentedObject(i, sources[i], np.asarray(masks[i], bool), scores.get(i), phrases.get(i)) for i in sorted(masks)
    ]
    return Segmentation(prompts.frame, objects)
