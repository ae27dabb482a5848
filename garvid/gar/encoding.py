"""Images (or keyframes) with their mask maps in, prompt-ready features out.

All frames' tiles go through the vision tower in batched calls, and every replayed
region of every frame comes out of one ``roi_align`` call, so a question about many
keyframes costs no per-frame Python work on tensors.
"""

from __future__ import annotations

from typing import Sequence

import torch

from garvid.gar.processor import GARImageInputs
from garvid.gar.replay import merge_tiles, roi_replay
from garvid.options import Scaling


def encode_with_replays(
    model,
    frames: Sequence[GARImageInputs],
    replayed_slots: Sequence[Sequence[int]],
    scaling: Scaling = "reference",
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Image features of every tile of ``frames`` and the replayed features of their regions.

    ``replayed_slots[k]`` lists the prompt slots replayed from frame ``k`` (each must
    have a region box there). Returns ``(features, crops)``: ``features`` is
    ``(frames * tiles, 256, d)`` in prompt order, and ``crops[slot]`` holds 256 rows per
    replay of that slot, frames in order: what :meth:`GARModel.embed_inputs` expects when
    each slot's crop runs appear in frame order in the prompt.
    """
    first = frames[0]
    if any(f.grid != first.grid or f.has_thumbnail != first.has_thumbnail for f in frames):
        raise ValueError("every frame of one prompt must be tiled the same way")
    pixels = torch.cat([f.pixel_values for f in frames])
    masks = torch.cat([f.mask_values for f in frames])
    features = model.encode_images(pixels, masks)
    jobs = [(k, slot) for slot in sorted({s for slots in replayed_slots for s in slots}) for k, slots in enumerate(replayed_slots) if slot in slots]
    if not jobs:
        return features, {}
    ncw, nch = first.grid
    per_frame = features.reshape(len(frames), first.num_tiles, *features.shape[1:])
    maps = merge_tiles(per_frame[:, 1:] if first.has_thumbnail else per_frame, ncw, nch)
    boxes = torch.tensor([frames[k].region_boxes[slot] for k, slot in jobs], dtype=torch.float64)
    frame_index = torch.tensor([k for k, _ in jobs], dtype=torch.long)
    replayed = roi_replay(maps, boxes, frame_index, scaling=scaling)
    crops: dict[int, torch.Tensor] = {}
    for slot in sorted({slot for _, slot in jobs}):
        rows = [i for i, (_, s) in enumerate(jobs) if s == slot]
        crops[slot] = replayed[rows[0] : rows[-1] + 1]  # jobs are grouped by slot, frames ascending
    return features, crops
