"""Images (or keyframes) with their mask maps in, prompt-ready features out.

The tiles of every frame of every prompt go through the vision tower in batched calls,
and the replayed regions come out of one ``roi_align`` call per tile layout (frames of
one layout share a feature-map size; a video protocol tiles every keyframe alike), so a
batch of questions about many keyframes costs no per-frame Python work on tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate, groupby
from typing import Sequence

import torch

from garvid.gar.processor import GARImageInputs
from garvid.gar.replay import merge_tiles, roi_replay
from garvid.options import Scaling

Encoding = tuple[torch.Tensor, dict[int, torch.Tensor]]
"""Image features of every tile of a prompt's frames, and its replayed regions by slot."""


@dataclass(frozen=True)
class EncodeJob:
    """One prompt's frames and, per frame, the slots replayed from it."""

    frames: Sequence[GARImageInputs]
    replayed_slots: Sequence[Sequence[int]]
    scaling: Scaling = "reference"

    def layout(self) -> tuple:
        """What must match for frames to share one ``roi_align`` call."""
        first = self.frames[0]
        return first.grid, first.has_thumbnail, self.scaling


def encode_many(model, jobs: Sequence[EncodeJob]) -> list[Encoding]:
    """Image features of every tile of each job's frames and the replayed features of their regions.

    All the jobs' tiles go through the vision tower together (in calls of the model's tile
    chunk) and their regions through one ``roi_align`` per tile layout. Per job, ``(features,
    crops)``: ``features`` is ``(frames * tiles, 256, d)`` in prompt order, and ``crops[slot]``
    holds 256 rows per replay of that slot (each frame listing it in ``replayed_slots`` must
    have its region box), frames in order: what :meth:`GARModel.embed_inputs` expects when each
    slot's crop runs appear in frame order in the prompt.
    """
    for job in jobs:
        first = job.frames[0]
        if any(f.grid != first.grid or f.has_thumbnail != first.has_thumbnail for f in job.frames):
            raise ValueError("every frame of one prompt must be tiled the same way")
    pixels = torch.cat([f.pixel_values for job in jobs for f in job.frames])
    masks = torch.cat([f.mask_values for job in jobs for f in job.frames])
    features = model.encode_images(pixels, masks)
    counts = [sum(f.num_tiles for f in job.frames) for job in jobs]
    per_job = list(torch.split(features, counts))
    crops: list[dict[int, torch.Tensor]] = [{} for _ in jobs]
    layouts: dict[tuple, list[int]] = {}
    for index, job in enumerate(jobs):
        layouts.setdefault(job.layout(), []).append(index)
    for members in layouts.values():
        _replay_layout(jobs, per_job, members, crops)
    return list(zip(per_job, crops))


def _replay_layout(
    jobs: Sequence[EncodeJob], features: list[torch.Tensor], members: list[int], crops: list[dict[int, torch.Tensor]]
) -> None:
    """Replay every region of the ``members`` jobs (one tile layout) in one ``roi_align`` call,
    filling their ``crops``: per job, slots ascending, each slot's frames in order."""
    replays = [
        (member, frame, slot)
        for member in members
        for slot in sorted({s for slots in jobs[member].replayed_slots for s in slots})
        for frame, slots in enumerate(jobs[member].replayed_slots)
        if slot in slots
    ]
    if not replays:
        return
    first = jobs[members[0]].frames[0]
    ncw, nch = first.grid
    frame_maps = []
    base = dict(zip(members, accumulate((len(jobs[m].frames) for m in members), initial=0)))  # first map of each job
    for member in members:
        per_frame = features[member].reshape(len(jobs[member].frames), first.num_tiles, *features[member].shape[1:])
        frame_maps.append(per_frame[:, 1:] if first.has_thumbnail else per_frame)
    maps = merge_tiles(torch.cat(frame_maps), ncw, nch)
    boxes = torch.tensor([jobs[m].frames[k].region_boxes[slot] for m, k, slot in replays], dtype=torch.float64)
    frame_index = torch.tensor([base[m] + k for m, k, _ in replays], dtype=torch.long)
    replayed = roi_replay(maps, boxes, frame_index, scaling=jobs[members[0]].scaling)
    for (member, slot), rows in groupby(enumerate(replays), key=lambda row: (row[1][0], row[1][2])):
        indices = [index for index, _ in rows]
        crops[member][slot] = replayed[indices[0] : indices[-1] + 1]  # a job's rows of one slot are consecutive


def joined(frames: Sequence[Encoding], replayed_slots: Sequence[Sequence[int]]) -> Encoding:
    """One prompt's encoding from its frames' own (each encoded alone, every shown slot replayed):
    features in frame order, and per slot the crops of the frames that replay it, in order,
    which is what :func:`encode_many` gives for the frames as one job."""
    features = torch.cat([encoding[0] for encoding in frames])
    crops: dict[int, torch.Tensor] = {}
    for slot in sorted({s for slots in replayed_slots for s in slots}):
        crops[slot] = torch.cat([encoding[1][slot] for encoding, slots in zip(frames, replayed_slots) if slot in slots])
    return features, crops
