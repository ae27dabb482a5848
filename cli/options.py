"""The option groups' flags, declared once, and the adapter that gives them to a command.

Each library option group (:mod:`garvid.options`, and :class:`~garvid.regions.input.RegionInput`)
has one :class:`OptionGroup` here: its flags as Typer ``Annotated`` declarations and the
field each sets. A command names the groups it takes as typed parameters and is decorated
with :func:`takes`, which shows Typer the groups' flags in their place and builds each
group from them before the command runs, so a bad value is refused before any work and
``--help`` lists exactly what the command reads. A group's own error names its field; the
CLI prints it under the flag (:func:`flag_message`).
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, TypeVar

import typer

from garvid.errors import GarvidError, OptionError
from garvid.options import (
    DEFAULT_ATTENTION,
    DEFAULT_CUT_THRESHOLD,
    DEFAULT_MIN_SHOT,
    AnswerOptions,
    GenerationOptions,
    KeyframeOptions,
    ModelOptions,
    PromptOptions,
    TrackingOptions,
    WhenOptions,
)
from garvid.presets import default_preset
from garvid.regions.input import DEFAULT_REDETECT, RegionInput

# Help panels: each command's options grouped the same way in --help.
OBJECTS = "Objects"
KEYFRAMES = "Keyframes and windows"
MODELS = "Models and devices"
TRACKING = "Video and tracking"
DECODING = "Prompt and decoding"
OUTPUT = "Output"
SCAN = "Scan"  # when: windows, refinement, threshold
ITEMS = "Items"  # batch and eval: what to run over
ENGINE = "Engine"  # batch and eval: where and how many at once

#: Still images: ``garvid image`` asks about them, ``garvid segment`` segments them; a video command names those.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})


def _not_an_image(path: Path) -> Path:
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        raise GarvidError(f"{path} is a still image, not a video: ask about it with `garvid image`, or get its masks with `garvid segment`")
    return path


VideoPath = Annotated[
    Path,
    typer.Argument(
        metavar="VIDEO", help="Video file (anything ffmpeg reads) or folder of frames.", show_default=False, callback=_not_an_image
    ),
]
Masks = Annotated[
    list[Path],
    typer.Option(
        "--mask",
        "-m",
        help=(
            "Palette/grayscale label PNG (value N = object N), or repeat for one binary PNG per object. "
            "PNG@TIME puts it on another frame (TIME: seconds like 4.5, or a frame like f120); a label's value names "
            "the same object on every frame."
        ),
        rich_help_panel=OBJECTS,
    ),
]
Boxes = Annotated[
    list[str],
    typer.Option(
        "--box",
        help="x1,y1,x2,y2 in pixels; one object each (repeatable). N=x1,y1,x2,y2 prompts object N; ...@TIME on another frame.",
        rich_help_panel=OBJECTS,
    ),
]
Points = Annotated[
    list[str],
    typer.Option(
        "--point",
        help="x,y in pixels; one object each (repeatable). N=x,y adds a click to object N; ...@TIME on another frame.",
        rich_help_panel=OBJECTS,
    ),
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
Redetect = Annotated[
    str,
    typer.Option(
        "--redetect",
        metavar="S|off",
        help="Look for the --object names again every S seconds inside each shot, and at every shot's start; off: once.",
        rich_help_panel=OBJECTS,
    ),
]
MaskFrame = Annotated[
    int,
    typer.Option(
        "--mask-frame",
        help="Frame index the masks, boxes, points (those without @TIME) and objects belong to.",
        rich_help_panel=OBJECTS,
    ),
]
ResizeMasks = Annotated[
    bool, typer.Option("--resize-masks", help="Resize masks to the video size (nearest).", rich_help_panel=OBJECTS)
]
Frames = Annotated[
    Optional[int],
    typer.Option("--frames", help="Keyframes per answer (default: the protocol's).", rich_help_panel=KEYFRAMES),
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
    Optional[float], typer.Option("--start", help="Analyse from this time (seconds).", rich_help_panel=KEYFRAMES)
]
End = Annotated[
    Optional[float], typer.Option("--end", help="Analyse up to this time (seconds).", rich_help_panel=KEYFRAMES)
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
        help="Frame rate of a folder of frames (default 30; video files state theirs).",
        rich_help_panel=TRACKING,
    ),
]
VideoDecoder = Annotated[
    str,
    typer.Option(
        "--decoder",
        help="Video decoder: decord, torchcodec, or auto (decord where it is installed, else torchcodec); the same frames on 8-bit video.",
        rich_help_panel=TRACKING,
    ),
]
DecodeDevice = Annotated[
    str,
    typer.Option(
        "--decode-device",
        help="Decode video on cpu, or on cuda / cuda:N (NVDEC, with torchcodec; not measured by garvid).",
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
ShotsSource = Annotated[
    str,
    typer.Option(
        "--shots",
        help="Shots, which tracking never crosses: auto (detect the cuts), off (one shot) or FILE (PySceneDetect's CSV scene list, or JSON).",
        rich_help_panel=TRACKING,
    ),
]
CutThreshold = Annotated[
    float,
    typer.Option(
        "--cut-threshold",
        help="How many times its neighbours' change a frame's change must be to make a cut (lower: more cuts).",
        rich_help_panel=TRACKING,
    ),
]
MinShot = Annotated[
    float, typer.Option("--min-shot", help="Shortest shot, in seconds: no cut closer to the last one.", rich_help_panel=TRACKING)
]
MaxNewTokens = Annotated[
    int, typer.Option("--max-new-tokens", help="Stop after this many answer tokens.", rich_help_panel=DECODING)
]
Sample = Annotated[bool, typer.Option("--sample", help="Sample instead of greedy decoding.", rich_help_panel=DECODING)]
Seed = Annotated[int, typer.Option("--seed", help="Random seed for --sample.", rich_help_panel=DECODING)]
Temperature = Annotated[
    float,
    typer.Option("--temperature", help="Sampling temperature (with --sample).", rich_help_panel=DECODING),
]
TopP = Annotated[
    float,
    typer.Option("--top-p", help="Nucleus sampling mass (with --sample).", rich_help_panel=DECODING),
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

_WHEN = WhenOptions()
WhenWindow = Annotated[
    float,
    typer.Option("--window", help="Seconds per coarse window scanned (each scored on --frames keyframes).", rich_help_panel=SCAN),
]
Resolution = Annotated[
    float,
    typer.Option("--resolution", help="Seconds boundaries are refined to (windows halved down to this).", rich_help_panel=SCAN),
]
Threshold = Annotated[
    float,
    typer.Option("--threshold", help="P(yes) / (P(yes) + P(no)) at or above which the statement holds, in (0, 1).", rich_help_panel=SCAN),
]


@dataclass(frozen=True)
class Flag:
    """One flag of a group: the command parameter Typer sees, its default, and the group field it sets."""

    parameter: str
    annotation: Any  # Annotated[type, typer.Option(...)]
    default: Any
    field: str
    to_field: Callable[[Any], Any] = lambda value: value

    @property
    def option(self) -> str:
        """The flag as typed (``--stride``)."""
        info = self.annotation.__metadata__[0]  # typer takes an Annotated option's first name as its "default"
        return next(name for name in (info.default, *info.param_decls) if isinstance(name, str) and name.startswith("--"))

    def as_parameter(self) -> inspect.Parameter:
        return inspect.Parameter(self.parameter, inspect.Parameter.KEYWORD_ONLY, default=self.default, annotation=self.annotation)


@dataclass(frozen=True)
class OptionGroup:
    """A library option group as flags: what a command taking it shows Typer and how the group is built."""

    parameter: str  # the command's parameter that receives the built group
    build: Callable[..., Any]  # the group's class (or a function) taking its fields by keyword
    flags: tuple[Flag, ...]

    def only(self, *parameters: str) -> OptionGroup:
        """The group with just these flags (the other fields keep the group's defaults)."""
        unknown = set(parameters) - {flag.parameter for flag in self.flags}
        assert not unknown, f"{self.parameter} has no flags {unknown}"
        return replace(self, flags=tuple(flag for flag in self.flags if flag.parameter in parameters))

    def without(self, *parameters: str) -> OptionGroup:
        return self.only(*(flag.parameter for flag in self.flags if flag.parameter not in parameters))

    def defaults(self, **values: Any) -> OptionGroup:
        """The group with other flag defaults (``eval`` answers 64 tokens, not 1024)."""
        return replace(self, flags=tuple(replace(f, default=values.get(f.parameter, f.default)) for f in self.flags))

    def from_flags(self, values: dict[str, Any]) -> Any:
        """Build the group from its flags' values, popping them from ``values``."""
        fields = {flag.field: flag.to_field(values.pop(flag.parameter)) for flag in self.flags}
        return self.build(**fields)


@dataclass(frozen=True)
class GroupOfGroups:
    """Several groups given to a command as one value (``AnswerOptions`` of model, tracking, ...)."""

    parameter: str
    build: Callable[..., Any]  # takes each part, built, by the part's parameter name
    parts: tuple[OptionGroup, ...]

    @property
    def flags(self) -> tuple[Flag, ...]:
        return tuple(flag for part in self.parts for flag in part.flags)

    def replacing(self, *parts: OptionGroup) -> GroupOfGroups:
        """The same groups with some of them narrowed (``describe`` has no ``--multiple-choice``)."""
        given = {part.parameter: part for part in parts}
        return replace(self, parts=tuple(given.get(part.parameter, part) for part in self.parts))

    def from_flags(self, values: dict[str, Any]) -> Any:
        return self.build(**{part.parameter: part.from_flags(values) for part in self.parts})


Command = TypeVar("Command", bound=Callable[..., Any])


def takes(*groups: OptionGroup | GroupOfGroups) -> Callable[[Command], Command]:
    """Give a command the flags of ``groups``; each arrives built, as the parameter the group names.

    Typer reads a command's options from its signature, so the decorated command shows Typer
    its own parameters (less the groups) followed by the groups' flags, keyword-only.
    """

    def decorate(command: Command) -> Command:
        names = {group.parameter for group in groups}
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name not in names]
        missing = names - set(inspect.signature(command).parameters)
        assert not missing, f"{command.__name__} takes no parameter {missing}"

        @functools.wraps(command)
        def run(**values: Any) -> Any:
            for group in groups:
                values[group.parameter] = group.from_flags(values)
            return command(**values)

        parameters = [p.replace(kind=p.KEYWORD_ONLY) for p in own] + [f.as_parameter() for g in groups for f in g.flags]
        run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        del run.__wrapped__  # Typer must see the flags, not the command's own signature
        return run  # type: ignore[return-value]

    return decorate


def _tuple(values: list) -> tuple:
    return tuple(values)


REGION_OPTIONS = OptionGroup(
    "regions",
    RegionInput,
    (
        Flag("mask", Masks, [], "masks", _tuple),
        Flag("box", Boxes, [], "boxes", _tuple),
        Flag("point", Points, [], "points", _tuple),
        Flag("object_name", Objects, [], "objects", _tuple),
        Flag("detector", Detector, None, "detector"),
        Flag("object_threshold", ObjectThreshold, None, "object_threshold"),
        Flag("redetect", Redetect, f"{DEFAULT_REDETECT:g}", "redetect"),
        Flag("mask_frame", MaskFrame, 0, "frame"),
        Flag("resize_masks", ResizeMasks, False, "resize_masks"),
    ),
)
MODEL_OPTIONS = OptionGroup(
    "model",
    ModelOptions,
    (
        Flag("model", Model, None, "name", lambda name: name or ""),
        Flag("dtype", Dtype, "auto", "dtype"),
        Flag("device", Device, "auto", "device"),
        Flag("attn", Attn, DEFAULT_ATTENTION, "attn"),
    ),
)
TRACKING_OPTIONS = OptionGroup(
    "tracking",
    TrackingOptions,
    (
        Flag("tracker", Tracker, default_preset("trackers"), "tracker"),
        Flag("stride", Stride, "auto", "stride"),
        Flag("fps", Fps, None, "fps"),
        Flag("decoder", VideoDecoder, "auto", "decoder"),
        Flag("decode_device", DecodeDevice, "cpu", "decode_device"),
        Flag("cache_dir", CacheDir, None, "cache_dir"),
        Flag("no_cache", NoCache, False, "use_cache", lambda no_cache: not no_cache),
        Flag("shots", ShotsSource, "auto", "shots"),
        Flag("cut_threshold", CutThreshold, DEFAULT_CUT_THRESHOLD, "cut_threshold"),
        Flag("min_shot", MinShot, DEFAULT_MIN_SHOT, "min_shot"),
    ),
)
KEYFRAME_OPTIONS = OptionGroup(
    "keyframes",
    KeyframeOptions,
    (
        Flag("frames", Frames, None, "frames"),
        Flag("keyframes", Keyframes, "uniform", "strategy"),
        Flag("start", Start, None, "start"),
        Flag("end", End, None, "end"),
        Flag("window", WindowSeconds, None, "window"),
        Flag("protocol", Protocol, None, "protocol"),
    ),
)
_GENERATION = GenerationOptions()
GENERATION_OPTIONS = OptionGroup(
    "generation",
    GenerationOptions,
    (
        Flag("max_new_tokens", MaxNewTokens, _GENERATION.max_new_tokens, "max_new_tokens"),
        Flag("sample", Sample, False, "sample"),
        Flag("seed", Seed, _GENERATION.seed, "seed"),
        Flag("temperature", Temperature, _GENERATION.temperature, "temperature"),
        Flag("top_p", TopP, _GENERATION.top_p, "top_p"),
    ),
)
PROMPT_OPTIONS = OptionGroup(
    "prompt",
    PromptOptions,
    (
        Flag("multiple_choice", MultipleChoice, False, "multiple_choice"),
        Flag("mask_resample", MaskResample, "nearest", "mask_resample"),
        Flag("replay_scaling", ReplayScaling, "reference", "replay_scaling"),
    ),
)
WHEN_OPTIONS = OptionGroup(
    "when",
    WhenOptions,
    (
        Flag("window", WhenWindow, _WHEN.window, "window"),
        Flag("resolution", Resolution, _WHEN.resolution, "resolution"),
        Flag("threshold", Threshold, _WHEN.threshold, "threshold"),
    ),
)
GROUPS = (REGION_OPTIONS, MODEL_OPTIONS, TRACKING_OPTIONS, KEYFRAME_OPTIONS, GENERATION_OPTIONS, PROMPT_OPTIONS, WHEN_OPTIONS)

#: What ``ask``, ``describe``, ``chat``, ``batch`` and ``eval`` take besides the video, objects and question.
ANSWER_OPTIONS = GroupOfGroups(
    "options", AnswerOptions, (KEYFRAME_OPTIONS, MODEL_OPTIONS, TRACKING_OPTIONS, GENERATION_OPTIONS, PROMPT_OPTIONS)
)

#: What ``when`` takes besides its own scan options: no --window of answers (the scan's is its own),
#: nothing about generating text.
WHEN_ANSWER_OPTIONS = ANSWER_OPTIONS.replacing(
    KEYFRAME_OPTIONS.without("window"), GENERATION_OPTIONS.only(), PROMPT_OPTIONS.without("multiple_choice")
)

#: The flag that sets each library field, for errors raised after the groups were built.
FLAG_OF_FIELD = {flag.field: flag.option for group in GROUPS for flag in group.flags} | {
    "prompts_per_pass": "--batch-size",
    "tracks": "--tracks",
    "eval_protocol": "--eval-protocol",
    "mask_mode": "--mask-mode",
    "ray_address": "--ray-address",
}


def flag_message(error: GarvidError) -> str:
    """The error as the CLI says it: an option's problem under the flag that sets it."""
    if isinstance(error, OptionError) and error.field in FLAG_OF_FIELD:
        return f"{FLAG_OF_FIELD[error.field]} {error.problem}"
    return str(error)

