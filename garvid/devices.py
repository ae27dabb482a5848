"""Compute devices by name, shared by the tracker and the language model."""

from __future__ import annotations

import torch

from garvid.errors import GarvidError


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise GarvidError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise GarvidError(f"device {name!r} asked for, but CUDA is not available here: use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise GarvidError(f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def memory_errors() -> tuple[type[BaseException], ...]:
    """Errors that sink one item but not the run: out of memory, host or GPU."""
    return (MemoryError, torch.OutOfMemoryError)
