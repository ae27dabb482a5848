"""Compute devices by name, shared by the tracker and the language model."""

from __future__ import annotations

import gc

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


def check_attention(name: str, device: str) -> None:
    """Refuse an attention kernel this machine cannot run, before any model loads.

    flash-attention 2 needs the ``flash_attn`` package and a CUDA device.
    """
    from garvid.options import ATTENTION_IMPLEMENTATIONS

    if name not in ATTENTION_IMPLEMENTATIONS:
        raise GarvidError(f"--attn must be one of {', '.join(ATTENTION_IMPLEMENTATIONS)}, not {name!r}")
    if name != "flash_attention_2":
        return
    if resolve_device(device).type != "cuda":
        raise GarvidError("--attn flash_attention_2 needs a CUDA device; use --attn sdpa (or eager) on this device")
    import importlib.util

    if importlib.util.find_spec("flash_attn") is None:
        raise GarvidError("--attn flash_attention_2 needs the flash-attn package, which is not installed; use --attn sdpa")


def memory_errors() -> tuple[type[BaseException], ...]:
    """Errors that sink one item but not the run: out of memory, host or GPU."""
    return (MemoryError, torch.OutOfMemoryError)


def release_memory() -> None:
    """Give the memory of models just dropped back (the CUDA cache too), so the next model
    loads into it: peak memory is the larger model, not the sum."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
