"""Which frames the tracker looks at: a regular grid plus the prompt frame."""

from __future__ import annotations

import math

from garvid.errors import GarvidError, RegionError

#: Tracked frames per requested keyframe that ``auto_stride`` budgets for, per device type.
#: CPU SAM2 is slow (seconds a frame for hiera-tiny at 1024 px: benchmarks/results/MEASUREMENTS.md), so it
#: tracks about the keyframes plus one frame in between; a GPU tracks far denser, which
#: keeps SAM2's memory close to the frame-to-frame motion it was trained on.
FRAMES_PER_KEYFRAME = {"cpu": 2, "cuda": 16}


def tracked_frames(
    num_frames: int, prompt_frame: int, stride: int, start: int = 0, end: int | None = None
) -> list[int]:
    """Every ``stride``-th frame of ``[start, end)`` counted from ``start``, plus the prompt frame.

    The prompt frame is always tracked (SAM2 needs the frame the prompts were drawn on),
    even when it falls between two grid frames. ``end`` defaults to the end of the video.
    """
    end = num_frames if end is None else end
    if stride < 1:
        raise GarvidError(f"stride must be a positive integer, got {stride}")
    if not 0 <= start < end <= num_frames:
        raise GarvidError(f"frame range {start}..{end} does not fit the video's {num_frames} frames")
    if not start <= prompt_frame < end:
        raise RegionError(f"prompt frame {prompt_frame} lies outside the tracked range {start}..{end - 1}")
    return sorted({*range(start, end, stride), prompt_frame})


def auto_stride(num_frames: int, keyframes: int, device: str) -> int:
    """The stride ``--stride auto`` uses: a frame budget of keyframes x a per-device factor.

    The rule: ``budget = keyframes * FRAMES_PER_KEYFRAME[device type]`` (2 on CPU, 16 on
    CUDA) and ``stride = ceil(num_frames / budget)``, at least 1. So on CPU a 300-frame
    clip with 16 keyframes is tracked every 10th frame (30 frames), on CUDA every frame.
    ``device`` is a device name such as ``cpu``, ``cuda`` or ``cuda:1``.
    """
    if keyframes < 1:
        raise GarvidError(f"the number of keyframes must be positive, got {keyframes}")
    device_type = device.split(":", 1)[0]
    if device_type not in FRAMES_PER_KEYFRAME:
        raise GarvidError(f"unknown device {device!r}: use cpu, cuda or cuda:N")
    budget = keyframes * FRAMES_PER_KEYFRAME[device_type]
    return max(1, math.ceil(num_frames / budget))
