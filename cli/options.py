"""Options several commands share, declared once (Typer ``Annotated`` aliases)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Callable, Iterable, Optional

import typer

from garvid.options import GenerationOptions
from garvid.presets import default_preset
from garvid.regions.input import RegionInput

# Help panels: each command's options grouped the same way in --help.
OBJECTS = "Objects"
KEYFRAMES = "Keyframes and windows"
MODELS = "Models and devices"
TRACKING = "Video and tracking"
DECODING = "Prompt and decoding"
OUTPUT = "Output"
ITEMS = "Items"  # batch and eval: what to run over
ENGINE = "Engine"  # batch and eval: where and how many at once

Masks = Annotated[
    list[Path],
    typer.Option(
        "--mask",
        "-m",
        help="Palette/grayscale label PNG (value N = object N), or repeat for one binary PNG per object.",
        rich_help_panel=OBJECTS,
    ),
]
Boxes = Annotated[
    list[str], typer.Option("--box", help="x1,y1,x2,y2 in pixels; one object each (repeatable).", rich_help_panel=OBJECTS)
]
Points = Annotated[
    list[str], typer.Option("--point", help="x,y in pixels; one object each (repeatable).", rich_help_panel=OBJECTS)
]
Objects = Annotated[
    list[str],
    typer.Option(
        "--object",
        help='An object by name ("the red cup"), found on the prompt frame; one object each (repeatable).',
        rich_help_panel=OBJECTS,
    ),
]
Detector = Annotated[
    Optional[str],
    typer.Option(
        "--detector", help="Detector for --object: preset (configs/detectors.toml) or checkpoint folder.", rich_help_panel=OBJECTS
    ),
]
ObjectThreshold = Annotated[
    Optional[float],
    typer.Option(
        "--object-threshold", help="Score an --object instance must beat (default: the detector's).", rich_help_panel=OBJECTS
    ),
]
MaskFrame = Annotated[
    int,
    typer.Option(
        "--mask-frame", help="Frame index the masks, boxes, points and objects belong to.", rich_help_panel=OBJECTS
    ),
]
ResizeMasks = Annotated[
    bool, typer.Option("--resize-masks", help="Resize masks to the video size (nearest).", rich_help_panel=OBJECTS)
]
Frames = Annotated[
    Optional[int],
    typer.Option("--frames", min=1, help="Keyframes per answer (default: the protocol's).", rich_help_panel=KEYFRAMES),
]
Keyframes = Annotated[
    str,
    typer.Option(
        "--keyframes",
        help="uniform: spread over the span; visible: over the frames where the objects are visible.",
        rich_help_panel=KEYFRAMES,
    ),
]
Start = Annotated[
    Optional[float], typer.Option("--start", min=0.0, help="Analyse from this time (seconds).", rich_help_panel=KEYFRAMES)
]
End = Annotated[
    Optional[float], typer.Option("--end", min=0.0, help="Analyse up to this time (seconds).", rich_help_panel=KEYFRAMES)
]
WindowSeconds = Annotated[
    Optional[float],
    typer.Option("--window", help="One answer per window of this many seconds (timed answers).", rich_help_panel=KEYFRAMES),
]
Protocol = Annotated[
    Optional[str],
    typer.Option("--protocol", help="Prompt protocol name (configs/protocols) or TOML file.", rich_help_panel=KEYFRAMES),
]
Model = Annotated[
    Optional[str],
    typer.Option(
        "--model", help="Model preset (configs/models.toml), checkpoint folder or hub repo id.", rich_help_panel=MODELS
    ),
]
Tracker = Annotated[
    str,
    typer.Option(
        "--tracker", help="Tracker preset (configs/trackers.toml) or a SAM2 .pt checkpoint.", rich_help_panel=MODELS
    ),
]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.", rich_help_panel=MODELS)]
Dtype = Annotated[
    str, typer.Option("--dtype", help="auto (bf16 on CUDA, fp32 on CPU), bf16, fp16 or fp32.", rich_help_panel=MODELS)
]
BatchSize = Annotated[
    str,
    typer.Option(
        "--batch-size",
        help="Prompts GAR answers per forward pass: a number, or auto (from the GPU's free memory; 1 on a CPU).",
        rich_help_panel=ENGINE,
    ),
]
Stride = Annotated[
    str,
    typer.Option(
        "--stride",
        help="Track every N-th frame (plus the prompt frame), or 'auto' (from --frames and the device).",
        rich_help_panel=TRACKING,
    ),
]
Fps = Annotated[
    Optional[float],
    typer.Option(
        "--fps",
        min=0.001,
        help="Frame rate of a folder of frames (default 30; video files state theirs).",
        rich_help_panel=TRACKING,
    ),
]
CacheDir = Annotated[
    Optional[Path],
    typer.Option("--cache-dir", help="Tracking cache folder (default: garvid's user cache).", rich_help_panel=TRACKING),
]
NoCache = Annotated[
    bool, typer.Option("--no-cache", help="Neither read nor write the tracking cache.", rich_help_panel=TRACKING)
]
MaxNewTokens = Annotated[
    int, typer.Option("--max-new-tokens", min=1, help="Stop after this many answer tokens.", rich_help_panel=DECODING)
]
Sample = Annotated[bool, typer.Option("--sample", help="Sample instead of greedy decoding.", rich_help_panel=DECODING)]
Seed = Annotated[int, typer.Option("--seed", help="Random seed for --sample.", rich_help_panel=DECODING)]
Temperature = Annotated[
    float,
    typer.Option("--temperature", min=0.0, help="Sampling temperature (with --sample).", rich_help_panel=DECODING),
]
TopP = Annotated[
    float,
    typer.Option("--top-p", min=0.0, max=1.0, help="Nucleus sampling mass (with --sample).", rich_help_panel=DECODING),
]
MultipleChoice = Annotated[
    bool,
    typer.Option(
        "--multiple-choice",
        help="End the question with GAR's 'Answer with the correct option's letter directly.'",
        rich_help_panel=DECODING,
    ),
]
Attn = Annotated[
    str,
    typer.Option(
        "--attn",
        help="GAR's attention kernel: sdpa (works everywhere), flash_attention_2 (CUDA, as the reference) or eager.",
        rich_help_panel=MODELS,
    ),
]
MaskResample = Annotated[
    str,
    typer.Option(
        "--mask-resample",
        help="Tile the mask map with nearest (exact ids) or bicubic (as in training).",
        rich_help_panel=DECODING,
    ),
]
ReplayScaling = Annotated[
    str,
    typer.Option(
        "--replay-scaling",
        help="reference (the released weights' double box scaling) or single.",
        rich_help_panel=DECODING,
    ),
]
Format = Annotated[
    Optional[str],
    typer.Option(
        "--format", "-f", help="text, json, srt or vtt (default: from the -o suffix, else text).", rich_help_panel=OUTPUT
    ),
]
Output = Annotated[
    Optional[Path],
    typer.Option("--output", "-o", help="Write here (atomically) instead of stdout.", rich_help_panel=OUTPUT),
]
TracksFile = Annotated[
    Optional[Path],
    typer.Option(
        "--tracks",
        help="Use this tracks JSON (garvid track's output, or the same schema) instead of tracking; it gives the objects, so no --mask.",
        rich_help_panel=OBJECTS,
    ),
]

DEFAULT_TRACKER = default_preset("trackers")
DEFAULT_GENERATION = GenerationOptions()


#: The region options, in :func:`region_input`'s order (for commands that borrow them).
REGION_OPTIONS = ("mask", "box", "point", "object_name", "detector", "object_threshold", "mask_frame", "resize_masks")


def region_input(
    masks: list[Path],
    boxes: list[str],
    points: list[str],
    objects: list[str],
    detector: str | None,
    object_threshold: float | None,
    frame: int,
    resize_masks: bool,
) -> RegionInput:
    """The region prompts of the shared options, as typed."""
    return RegionInput(
        masks=masks,
        boxes=boxes,
        points=points,
        frame=frame,
        resize_masks=resize_masks,
        objects=objects,
        detector=detector,
        object_threshold=object_threshold,
    )


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
