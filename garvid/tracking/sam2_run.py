"""One SAM2 tracking run over a list of tracked frames, with bounded memory.

SAM2's ``init_state`` only takes a path and loads every frame up front, and its
``propagate_in_video`` keeps every frame's outputs and prints a tqdm bar. This module
builds the same inference state around a lazy :class:`FrameFeed`, adds the prompts with
SAM2's own ``add_new_mask`` / ``add_new_points_or_box``, and runs the same per-frame
steps as ``propagate_in_video`` (forward from the prompt frame, then backward), dropping
each stored output as soon as no later frame can read it. SAM2 sees only the tracked
frames: its frame ``i`` is ``frames[i]`` of the video.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from sam2.sam2_video_predictor import SAM2VideoPredictor

from garvid.errors import RegionError
from garvid.media.source import FrameSource
from garvid.regions.prompts import RegionPrompts
from garvid.tracking.feed import FrameFeed
from garvid.tracking.model import precision


def memory_reach(model: SAM2VideoPredictor, num_frames: int) -> int:
    """How many frames back (along the tracking direction) SAM2 reads a non-conditioning output.

    From ``SAM2Base._prepare_memory_conditioned_features``: mask memories come from the
    previous frame and from ``num_maskmem - 2`` more frames on a grid of
    ``memory_temporal_stride_for_eval`` (the farthest ``1 + (num_maskmem - 2) * stride``
    back); object pointers from up to ``min(num_frames, max_obj_ptrs_in_encoder) - 1``
    frames back. Conditioning (prompted) frames are read from their own dict, kept whole.
    """
    reach = 0
    if model.num_maskmem >= 2:
        reach = 1 + (model.num_maskmem - 2) * model.memory_temporal_stride_for_eval
    if model.use_obj_ptrs_in_encoder:
        reach = max(reach, min(num_frames, model.max_obj_ptrs_in_encoder) - 1)
    return reach


def new_inference_state(images: FrameFeed, height: int, width: int, device: torch.device) -> dict[str, Any]:
    """The dict ``SAM2VideoPredictor.init_state`` builds, around ``images`` instead of a path."""
    return {
        "images": images,
        "num_frames": len(images),
        "offload_video_to_cpu": False,
        "offload_state_to_cpu": False,
        "video_height": height,
        "video_width": width,
        "device": device,
        "storage_device": device,
        "point_inputs_per_obj": {},
        "mask_inputs_per_obj": {},
        "cached_features": {},
        "constants": {},
        "obj_id_to_idx": OrderedDict(),
        "obj_idx_to_id": OrderedDict(),
        "obj_ids": [],
        "output_dict_per_obj": {},
        "temp_output_dict_per_obj": {},
        "frames_tracked_per_obj": {},
    }


def check_prompts(prompts: RegionPrompts, width: int, height: int) -> None:
    """RegionError unless every prompt, on every prompt frame, is a usable mask, box or point inside the frame."""
    if not prompts.object_ids:
        raise RegionError("no objects to track: give at least one mask, box or point")
    for on_frame in prompts.per_frame():
        check_frame_prompts(on_frame, width, height)


def check_frame_prompts(prompts: RegionPrompts, width: int, height: int) -> None:
    """:func:`check_prompts` for the prompts of one frame."""
    if prompts.objects:
        raise RegionError("objects given by name must be found (detect_objects) before tracking")
    ids = [*prompts.masks, *prompts.boxes, *prompts.points]
    if len(set(ids)) != len(ids):
        raise RegionError(f"an object id is given more than one kind of prompt (mask, box or points) on frame {prompts.frame}")
    for object_id, mask in prompts.masks.items():
        if mask.shape != (height, width):
            size = f"{mask.shape[1]}x{mask.shape[0]}" if mask.ndim == 2 else str(mask.shape)
            raise RegionError(f"mask of object {object_id} is {size}, the video {width}x{height}")
        if not mask.any():
            raise RegionError(f"mask of object {object_id} is empty")
    for object_id, (x1, y1, x2, y2) in prompts.boxes.items():
        if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
            raise RegionError(
                f"box {x1:g},{y1:g},{x2:g},{y2:g} of object {object_id} must satisfy "
                f"0 <= x1 < x2 <= {width} and 0 <= y1 < y2 <= {height}"
            )
    for object_id, points in prompts.points.items():
        if not points:
            raise RegionError(f"object {object_id} has an empty list of points")
        for x, y in points:
            if not (0 <= x < width and 0 <= y < height):
                raise RegionError(f"point {x:g},{y:g} of object {object_id} lies outside the {width}x{height} frame")


class TrackingSession:
    """SAM2 inference over ``frames`` of ``video``: add prompts once, then propagate."""

    def __init__(self, predictor: SAM2VideoPredictor, video: FrameSource, frames: Sequence[int]):
        frames = list(frames)
        if not frames or any(b <= a for a, b in zip(frames, frames[1:])):
            raise ValueError("tracked frames must be a non-empty, strictly ascending list")
        if frames[0] < 0 or frames[-1] >= video.info.num_frames:
            raise ValueError(f"tracked frames must lie in 0..{video.info.num_frames - 1}")
        self.predictor = predictor
        self.frames = frames
        self.info = video.info
        feed = FrameFeed(video, frames, predictor.image_size, predictor.device)
        self.state = new_inference_state(feed, video.info.height, video.info.width, predictor.device)
        self.reach = memory_reach(predictor, len(frames))
        self.prompt_index = -1

    @torch.inference_mode()
    def add_prompts(self, prompts: RegionPrompts) -> None:
        """Give SAM2 every object's prompts on every prompt frame (masks as-is, boxes and points
        encoded), as SAM2's own multi-frame prompting does: each prompted frame becomes a
        conditioning frame of its object, and propagation starts at the earliest of them."""
        check_prompts(prompts, self.info.width, self.info.height)
        missing = [f for f in prompts.prompt_frames if f not in self.frames]
        if missing:
            raise RegionError(f"prompt frame {missing[0]} is not among the tracked frames")
        self.prompt_index = self.frames.index(prompts.prompt_frames[0])
        add_mask, add_points = self.predictor.add_new_mask, self.predictor.add_new_points_or_box
        for object_id in prompts.object_ids:  # SAM2 numbers objects as it first meets them: by id, here
            self.predictor._obj_id_to_idx(self.state, object_id)
        with precision(self.predictor.device):
            for on_frame in prompts.per_frame():
                index = self.frames.index(on_frame.frame)
                for object_id in on_frame.own_ids:
                    if object_id in on_frame.masks:
                        mask = torch.from_numpy(np.asarray(on_frame.masks[object_id], bool))
                        add_mask(self.state, index, object_id, mask)
                    elif object_id in on_frame.boxes:
                        add_points(self.state, index, object_id, box=list(on_frame.boxes[object_id]))
                    else:
                        points = on_frame.points[object_id]
                        add_points(self.state, index, object_id, points=points, labels=[1] * len(points))

    @property
    def object_ids(self) -> list[int]:
        return list(self.state["obj_ids"])

    @torch.inference_mode()
    def propagate(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """Yield ``(i, masks, scores)`` for each tracked frame index ``i``, prompt frame first.

        ``masks`` are ``(objects, H, W)`` booleans at video resolution on the compute
        device; ``scores`` are ``(objects,)`` sigmoids of SAM2's object-score logits.
        Frames after the prompt frame come in forward order, then those before it backward.
        """
        if self.prompt_index < 0:
            raise RuntimeError("add_prompts must be called before propagate")
        self.predictor.propagate_in_video_preflight(self.state)
        passes = [(range(self.prompt_index, len(self.frames)), False)]
        if self.prompt_index > 0:
            passes.append((range(self.prompt_index - 1, -1, -1), True))
        for order, reverse in passes:
            for index in order:
                with precision(self.predictor.device):
                    logits, scores = self._step(index, reverse)
                self._forget(index, reverse)
                yield index, logits[:, 0] > 0, scores

    def _step(self, index: int, reverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame of ``SAM2VideoPredictor.propagate_in_video``, every object in turn."""
        logits, score_logits = [], []
        for obj_idx in range(len(self.state["obj_ids"])):
            outputs = self.state["output_dict_per_obj"][obj_idx]
            out = outputs["cond_frame_outputs"].get(index)
            if out is None:
                out, _ = self.predictor._run_single_frame_inference(
                    inference_state=self.state,
                    output_dict=outputs,
                    frame_idx=index,
                    batch_size=1,
                    is_init_cond_frame=False,
                    point_inputs=None,
                    mask_inputs=None,
                    reverse=reverse,
                    run_mem_encoder=True,
                )
                outputs["non_cond_frame_outputs"][index] = out
            self.state["frames_tracked_per_obj"][obj_idx][index] = {"reverse": reverse}
            logits.append(out["pred_masks"])
            score_logits.append(out["object_score_logits"])
        _, video_res = self.predictor._get_orig_video_res_output(self.state, torch.cat(logits))
        return video_res, torch.cat(score_logits).float().sigmoid().flatten()

    def _forget(self, index: int, reverse: bool) -> None:
        """Drop the non-conditioning outputs that no frame after ``index`` will read."""
        for obj_idx, outputs in self.state["output_dict_per_obj"].items():
            stored = outputs["non_cond_frame_outputs"]
            for t in [t for t in stored if self._unreachable(t, index, reverse)]:
                del stored[t]
                self.state["frames_tracked_per_obj"][obj_idx].pop(t, None)

    def _unreachable(self, t: int, index: int, reverse: bool) -> bool:
        if reverse:
            return t - index >= self.reach
        if self.prompt_index > 0 and t - self.prompt_index < self.reach:
            return False  # the backward pass starts beside the prompt frame and reads these
        return index - t >= self.reach
