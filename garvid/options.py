"""Prompt and decoding options: plain data, importable without torch (the CLI's defaults)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from garvid.errors import GarvidError

MaskResample = Literal["nearest", "bicubic"]
"""How the mask map is resized into tiles: nearest (exact ids) or bicubic (what training fed)."""

Scaling = Literal["reference", "single"]
"""RoI replay box scaling: the reference's double scaling (the released weights') or single."""

Attention = Literal["sdpa", "flash_attention_2", "eager"]
"""The language model's attention kernel (transformers' ``attn_implementation``)."""
ATTENTION_IMPLEMENTATIONS: tuple[Attention, ...] = ("sdpa", "flash_attention_2", "eager")
DEFAULT_ATTENTION: Attention = "sdpa"
"""Works on every device; the reference forced flash-attention 2 (bf16 near-ties can flip with the kernel)."""


@dataclass(frozen=True)
class GenerationOptions:
    """Decoding settings; greedy up to 1024 new tokens like the reference."""

    max_new_tokens: int = 1024
    sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 0


@dataclass(frozen=True)
class PromptOptions:
    """How the prompt is built; the defaults reproduce the reference's evaluation path."""

    double_bos: bool = True
    mask_resample: MaskResample = "nearest"
    multiple_choice: bool = False
    replay_scaling: Scaling = "reference"  # the released weights' double box scaling

    def __post_init__(self) -> None:
        if self.mask_resample not in ("nearest", "bicubic"):
            raise GarvidError(f"mask resampling must be nearest or bicubic, not {self.mask_resample!r}")
        if self.replay_scaling not in ("reference", "single"):
            raise GarvidError(f"replay scaling must be reference or single, not {self.replay_scaling!r}")


BatchSize = int | Literal["auto"]
"""Prompts answered together: a count, or ``auto`` (sized to the device's free memory)."""


def parse_batch_size(value: str | int) -> BatchSize:
    """``--batch-size``: a whole number of at least 1, or ``auto``."""
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise GarvidError(f"--batch-size must be a whole number of at least 1, or auto; not {str(value)!r}")
    return int(text)
