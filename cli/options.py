"""Options several commands share, declared once (Typer ``Annotated`` aliases)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from garvid.options import GenerationOptions
from garvid.presets import default_preset

Masks = Annotated[
    list[Path],
    typer.Option(
        "--mask", "-m", help="Palette/grayscale label PNG (value N = object N), or repeat for one binary PNG per object."
    ),
]
Boxes = Annotated[list[str], typer.Option("--box", help="x1,y1,x2,y2 in pixels; one object each (repeatable).")]
Points = Annotated[list[str], typer.Option("--point", help="x,y in pixels; one object each (repeatable).")]
MaskFrame = Annotated[int, typer.Option("--mask-frame", help="Frame index the masks, boxes and points belong to.")]
ResizeMasks = Annotated[bool, typer.Option("--resize-masks", help="Resize masks to the video size (nearest).")]
Tracker = Annotated[
    str, typer.Option("--tracker", help="Tracker preset (configs/trackers.toml) or a SAM2 .pt checkpoint.")
]
Stride = Annotated[
    str,
    typer.Option("--stride", help="Track every N-th frame (plus the prompt frame), or 'auto' (from --frames and the device)."),
]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
Model = Annotated[
    Optional[str], typer.Option("--model", help="Model preset (configs/models.toml), checkpoint folder or hub repo id.")
]
Dtype = Annotated[str, typer.Option("--dtype", help="auto (bf16 on CUDA, fp32 on CPU), bf16, fp16 or fp32.")]
MaxNewTokens = Annotated[int, typer.Option("--max-new-tokens", min=1, help="Stop after this many answer tokens.")]
Sample = Annotated[bool, typer.Option("--sample", help="Sample instead of greedy decoding.")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed for --sample.")]
Temperature = Annotated[float, typer.Option("--temperature", min=0.0, help="Sampling temperature (with --sample).")]
TopP = Annotated[float, typer.Option("--top-p", min=0.0, max=1.0, help="Nucleus sampling mass (with --sample).")]
MaskResample = Annotated[
    str, typer.Option("--mask-resample", help="Tile the mask map with nearest (exact ids) or bicubic (as in training).")
]
ReplayScaling = Annotated[
    str, typer.Option("--replay-scaling", help="reference (the released weights' double box scaling) or single.")
]
Output = Annotated[Optional[Path], typer.Option("--output", "-o", help="Write here (atomically) instead of stdout.")]

DEFAULT_TRACKER = default_preset("trackers")
DEFAULT_GENERATION = GenerationOptions()


def generation_options(max_new_tokens: int, sample: bool, temperature: float, top_p: float, seed: int) -> GenerationOptions:
    return GenerationOptions(max_new_tokens=max_new_tokens, sample=sample, temperature=temperature, top_p=top_p, seed=seed)
