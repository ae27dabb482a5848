"""``--object`` phrases -> prompts SAM2 takes: run the detector on the prompt frame (or, to
find objects again, on several frames: ``--redetect``), choose each phrase's instance, and
free the detector (before SAM2 loads: peak memory is the
largest model, not the sum). SAM 3 instances become mask prompts, Grounding DINO's boxes
box prompts (SAM2's prompt encoder turns them into masks, as for ``--box``)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from typing import Sequence

from garvid.detection.checkpoints import check_detector, resolve_detector
from garvid.detection.selection import Instance, match_instances, select_instances
from garvid.errors import RegionError
from garvid.media.source import FrameSource
from garvid.regions.input import RegionInput
from garvid.regions.prompts import Box, ObjectName, RegionPrompts


@dataclass(frozen=True)
class Detection:
    """Which instance an ``--object`` phrase became on one frame."""

    object_id: int
    phrase: str
    score: float
    box: Box  # the detector's box, pixels x1, y1, x2, y2 (inside the frame)
    detector: str
    frame: int


def detect_objects(
    video: FrameSource,
    prompts: RegionPrompts,
    regions: RegionInput,
    device: str = "auto",
    *,
    frames: Sequence[int] | None = None,
    cuts: Sequence[int] = (),
) -> tuple[RegionPrompts, list[Detection]]:
    """``prompts`` with every phrase in ``prompts.objects`` replaced by its instances' masks or boxes.

    ``frames`` None: the detector runs on ``prompts.frame``, where every phrase must be found
    (RegionError naming the frame otherwise). Else it runs on each of ``frames`` (decoded one
    at a time), and every instance found becomes a prompt of its object on its own frame (an
    anchor); an object may be missing from some of them (it left the picture), not from all
    (RegionError naming the phrase and how many frames were searched). ``cuts`` are the first
    frames of the shots but the first (:attr:`garvid.shots.shots.Shots.cuts`): an object is
    followed from one detection frame to the next by box overlap within a shot only (the rule
    in :mod:`garvid.detection.selection`). The other prompts are kept as they are.
    """
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
    searched = [prompts.frame] if frames is None else sorted(set(frames))
    detector = Detector.load(spec, target, list(ranks_of))
    found: dict[int, dict[int, Instance]] = {}  # frame -> object id -> instance
    last_box: dict[int, Box] = {}  # object id -> its last box found in the current shot
    shot = -1
    try:
        for frame in searched:
            if bisect.bisect_right(cuts, frame) != shot:  # a new shot: nothing is followed across a cut
                shot, last_box = bisect.bisect_right(cuts, frame), {}
            image = video.frames([frame])[0]
            chosen: dict[int, Instance] = {}
            for phrase, ranks in ranks_of.items():
                candidates = detector.candidates(image, phrase)
                if frames is None:
                    count = max(ranks.values()) + 1  # a question about the second "cup" alone still skips the first
                    instances = select_instances(candidates, phrase, count, threshold, frame)
                    chosen.update({object_id: instances[rank] for object_id, rank in ranks.items()})
                else:
                    chosen.update(match_instances(candidates, phrase, ranks, last_box, threshold))
            height, width = image.shape[:2]
            found[frame] = {o: replace(i, box=inside_frame(i.box, width, height)) for o, i in chosen.items()}
            last_box.update({o: i.box for o, i in found[frame].items()})
    finally:
        del detector
        release_memory()
    missing = [o for o in sorted(prompts.objects) if not any(o in chosen for chosen in found.values())]
    if missing:
        raise RegionError(not_found_message(prompts.objects, missing[0], len(searched), threshold))
    detections = [
        Detection(o, i.phrase, i.score, i.box, spec.name, frame) for frame, chosen in found.items() for o, i in sorted(chosen.items())
    ]
    return with_detections(replace(prompts, objects={}), found), detections


def not_found_message(objects: dict[int, ObjectName], object_id: int, searched: int, threshold: float) -> str:
    """Why object ``object_id`` (a name) has no prompt: found on none of ``searched`` frames."""
    phrase, rank = objects[object_id]
    which = f"no instance of {phrase!r}" if rank == 0 else f"no instance of {phrase!r} for object {object_id} (its instance {rank + 1})"
    return (
        f"{which} scores above {threshold:g} on any of the {searched} frame(s) searched: "
        "give a lower --object-threshold, or mark it with --mask/--box"
    )


def with_detections(prompts: RegionPrompts, found: dict[int, dict[int, Instance]]) -> RegionPrompts:
    """``prompts`` plus each frame's found instances as prompts on that frame: SAM 3's mask,
    or the box when there is none (Grounding DINO)."""
    parts = {  # copies: the caller's prompts stay as they are
        part.frame: replace(part, masks=dict(part.masks), boxes=dict(part.boxes), points=dict(part.points), objects=dict(part.objects))
        for part in prompts.per_frame()
    }
    for frame, chosen in sorted(found.items()):
        part = parts.setdefault(frame, RegionPrompts(frame))
        for object_id, instance in chosen.items():
            if instance.mask is not None and instance.mask.any():
                part.masks[object_id] = instance.mask
            else:
                part.boxes[object_id] = instance.box
    kept = [part for _, part in sorted(parts.items()) if part.own_ids]
    base = parts[prompts.frame] if parts[prompts.frame].own_ids else kept[0]
    return replace(base, anchors=tuple(part for part in kept if part is not base))


def inside_frame(box: tuple[float, float, float, float], width: int, height: int) -> Box:
    """``box`` clipped to the frame, at least one pixel wide and high (a valid SAM2 box prompt)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    x1, x2 = sorted((min(max(x1, 0.0), width - 1.0), min(max(x2, 0.0), float(width))))
    y1, y2 = sorted((min(max(y1, 0.0), height - 1.0), min(max(y2, 0.0), float(height))))
    return x1, y1, max(x2, x1 + 1.0), max(y2, y1 + 1.0)
