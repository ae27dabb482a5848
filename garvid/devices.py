"""Compute devices by name, shared by the tracker and the language model."""

from __future__ import annotations

import gc

import torch

from garvid.errors import OptionError


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise OptionError("device", f"must be auto, cpu, cuda or cuda:N, not {name!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise OptionError("device", f"{name!r} asked for, but CUDA is not available here: use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise OptionError("device", f"{name!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def check_attention(name: str, device: str) -> None:
    """Refuse an attention kernel this machine cannot run, before any model loads.

    flash-attention 2 needs the ``flash_attn`` package and a CUDA device.
    """
    if name != "flash_attention_2":
        return
    if resolve_device(device).type != "cuda":
        raise OptionError("attn", "flash_attention_2 needs a CUDA device: use sdpa (or eager) on this device")
    import importlib.util

    if importlib.util.find_spec("flash_attn") is None:
        raise OptionError("attn", "flash_attention_2 needs the flash-attn package, which is not installed: use sdpa")


def memory_errors() -> tuple[type[BaseException], ...]:
    """Errors that sink one item but not the run: out of memory, host or GPU."""
    return (MemoryError, torch.OutOfMemoryError)


def release_memory() -> None:
    """Give the memory of models just dropped back (the CUDA cache too), so the next model
    loads into it: peak memory is the larger model, not the sum."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
