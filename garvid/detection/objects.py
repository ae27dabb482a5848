"""``--object`` phrases -> prompts SAM2 takes: run the detector on the prompt frame, choose
each phrase's instance, and free the detector (before SAM2 loads: peak memory is the
largest model, not the sum). SAM 3 instances become mask prompts, Grounding DINO's boxes
box prompts (SAM2's prompt encoder turns them into masks, as for ``--box``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from garvid.detection.checkpoints import check_detector, resolve_detector
from garvid.detection.selection import Instance, select_instances
from garvid.media.source import FrameSource
from garvid.regions.input import RegionInput
from garvid.regions.prompts import Box, RegionPrompts


@dataclass(frozen=True)
class Detection:
    """Which instance an ``--object`` phrase became."""

    object_id: int
    phrase: str
    score: float
    box: Box  # the detector's box, pixels x1, y1, x2, y2 (inside the frame)
    detector: str


def detect_objects(
    video: FrameSource, prompts: RegionPrompts, regions: RegionInput, device: str = "auto"
) -> tuple[RegionPrompts, list[Detection]]:
    """``prompts`` with every phrase in ``prompts.objects`` replaced by its instance's mask or box."""
    if not prompts.objects:
        return prompts, []

    from garvid.detection.models import Detector
    from garvid.devices import release_memory, resolve_device

    check_detector(regions)
    target = resolve_device(device)
    spec = resolve_detector(regions.detector)
    threshold = spec.threshold if regions.object_threshold is None else regions.object_threshold
    ranks_of: dict[str, dict[int, int]] = {}  # phrase -> object id -> which instance it takes
    for object_id, (phrase, rank) in sorted(prompts.objects.items()):
        ranks_of.setdefault(phrase, {})[object_id] = rank
    detector = Detector.load(spec, target, list(ranks_of))
    image = video.frames([prompts.frame])[0]
    chosen: dict[int, Instance] = {}
    try:
        for phrase, ranks in ranks_of.items():
            count = max(ranks.values()) + 1  # a question about the second "cup" alone still skips the first
            found = select_instances(detector.candidates(image, phrase), phrase, count, threshold, prompts.frame)
            chosen.update({object_id: found[rank] for object_id, rank in ranks.items()})
    finally:
        del detector
        release_memory()
    height, width = image.shape[:2]
    masks, boxes, detections = dict(prompts.masks), dict(prompts.boxes), []
    for object_id, instance in sorted(chosen.items()):
        box = inside_frame(instance.box, width, height)
        if instance.mask is not None and instance.mask.any():
            masks[object_id] = instance.mask
        else:
            boxes[object_id] = box
        detections.append(Detection(object_id, instance.phrase, instance.score, box, spec.name))
    return replace(prompts, masks=masks, boxes=boxes, objects={}), detections


def inside_frame(box: tuple[float, float, float, float], width: int, height: int) -> Box:
    """``box`` clipped to the frame, at least one pixel wide and high (a valid SAM2 box prompt)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    x1, x2 = sorted((min(max(x1, 0.0), width - 1.0), min(max(x2, 0.0), float(width))))
    y1, y2 = sorted((min(max(y1, 0.0), height - 1.0), min(max(y2, 0.0), float(height))))
    return x1, y1, max(x2, x1 + 1.0), max(y2, y1 + 1.0)
