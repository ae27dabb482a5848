"""Options several commands share, declared once (Typer ``Annotated`` aliases)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Callable, Iterable, Optional

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
Fps = Annotated[
    Optional[float], typer.Option("--fps", min=0.001, help="Frame rate of a folder of frames (default 30; video files state theirs).")
]
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
TracksFile = Annotated[
    Optional[Path],
    typer.Option(
        "--tracks",
        help="Use this tracks JSON (garvid track's output, or the same schema) instead of tracking; it gives the objects, so no --mask.",
    ),
]
Output = Annotated[Optional[Path], typer.Option("--output", "-o", help="Write here (atomically) instead of stdout.")]

DEFAULT_TRACKER = default_preset("trackers")
DEFAULT_GENERATION = GenerationOptions()


def generation_options(max_new_tokens: int, sample: bool, temperature: float, top_p: float, seed: int) -> GenerationOptions:
    return GenerationOptions(max_new_tokens=max_new_tokens, sample=sample, temperature=temperature, top_p=top_p, seed=seed)


def borrow_parameters(
    target: Callable, source: Callable, *, include: Iterable[str] | None = None, exclude: Iterable[str] = ()
) -> None:
    """Give ``target`` (which takes ``**options``) some of ``source``'s declared parameters.

    Typer reads a command's options from its signature; setting ``__signature__`` lets
    several commands share one declaration instead of copies that drift apart. ``target``'s
    own named parameters come first.
    """
    own = [p for p in inspect.signature(target, eval_str=True).parameters.values() if p.kind is not p.VAR_KEYWORD]
    names = {p.name for p in own}
    wanted = set(include) if include is not None else None
    borrowed = [
        p
        for name, p in inspect.signature(source, eval_str=True).parameters.items()
        if name not in names and name not in set(exclude) and (wanted is None or name in wanted)
    ]
    keyword = [p.replace(kind=p.KEYWORD_ONLY) for p in own + borrowed if p.kind is not p.POSITIONAL_ONLY]
    target.__signature__ = inspect.Signature(keyword)  # type: ignore[attr-defined]
    target.__annotations__ = {p.name: p.annotation for p in keyword}
