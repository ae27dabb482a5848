"""Building SAM2's video predictor on a device, with its weights loaded strictly.

Importing this module imports torch and sam2 (which initialises hydra globally), so the
light parts of garvid import it only when a tracker is actually built.
"""

from __future__ import annotations

import contextlib
from importlib.resources import files
from pathlib import Path
from typing import Sequence

import torch
from sam2.build_sam import build_sam2_video_predictor
from sam2.sam2_video_predictor import SAM2VideoPredictor

from garvid.errors import CheckpointError
from garvid.tracking.checkpoints import TrackerSpec, released_checkpoint_names


def precision(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA GPUs that support it, as SAM2 was run; plain fp32 elsewhere."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def has_cuda_extension() -> bool:
    """Whether sam2's optional CUDA extension (used to fill small holes in masks) is built."""
    try:
        from sam2 import _C  # noqa: F401
    except ImportError:
        return False
    return True


def build_predictor(spec: TrackerSpec, device: torch.device, overrides: Sequence[str] = ()) -> SAM2VideoPredictor:
    """The SAM2 video predictor of ``spec`` on ``device``, in eval mode.

    ``overrides`` are extra hydra overrides of the model config (``++model.key=value``).
    Random initialisation is seeded from ``spec.seed`` without touching the global RNG.
    """
    if not files("sam2").joinpath(spec.config).is_file():
        raise CheckpointError(f"sam2 has no config {spec.config!r}; use one like configs/sam2.1/sam2.1_hiera_t.yaml")
    extra = [f"++model.image_size={spec.image_size}"] if spec.image_size else []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        predictor = build_sam2_video_predictor(
            spec.config, ckpt_path=None, device="cpu", hydra_overrides_extra=[*extra, *overrides]
        )
    if spec.checkpoint is not None:
        load_weights(predictor, spec.checkpoint, spec.config)
    if device.type != "cuda" or not has_cuda_extension():
        # Hole filling needs sam2's CUDA kernel; without it sam2 warns on every frame and skips it.
        predictor.fill_hole_area = 0
    return predictor.to(device).eval()


def load_weights(model: torch.nn.Module, path: Path, config: str) -> None:
    """Load ``path``'s ``model`` state dict into ``model``; every tensor must fit exactly."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # not a zip/pickle, truncated, or refused by weights_only
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise CheckpointError(f"cannot read SAM2 checkpoint {path}: {reason}") from None
    state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a SAM2 checkpoint: it has no 'model' state dict")
    expected = model.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    misshaped = sorted(k for k in expected.keys() & state.keys() if expected[k].shape != state[k].shape)
    if missing or unexpected or misshaped:
        example = (missing or unexpected or misshaped)[0]
        raise CheckpointError(
            f"checkpoint {path.name} does not fit SAM2 config {config}: {len(missing)} missing, "
            f"{len(unexpected)} unexpected and {len(misshaped)} mis-shaped tensors (e.g. {example}); "
            "a local checkpoint's file name says which model it is: give it the name SAM2 released "
            f"its model's checkpoint under ({', '.join(released_checkpoint_names())})"
        )
    model.load_state_dict(state, strict=True)
