"""The option groups of a request: plain, typed data that validates itself when built.

Each group checks its own values and resolves its defaults in ``__post_init__``, raising
:class:`~garvid.errors.OptionError` named by the field, so a bad value is refused where it
is typed (the CLI builds the groups from its flags before any work) and a library caller
gets the same checks. Checks that need the machine (is CUDA there, does a checkpoint
exist) happen when a request is opened, still before any model loads.

Dataclasses, not pydantic: the groups are small, frozen and hashable (batch journals and
memo keys compare them), nothing here parses untyped input beyond a few strings, and
garvid keeps import time and dependencies low for ``--help``. Importable without torch.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from garvid.errors import OptionError
from garvid.presets import default_preset

MaskResample = Literal["nearest", "bicubic"]
"""How the mask map is resized into tiles: nearest (exact ids) or bicubic (what training fed)."""

Scaling = Literal["reference", "single"]
"""RoI replay box scaling: the reference's double scaling (the released weights') or single."""

Attention = Literal["sdpa", "flash_attention_2", "eager"]
"""The language model's attention kernel (transformers' ``attn_implementation``)."""
ATTENTION_IMPLEMENTATIONS: tuple[Attention, ...] = ("sdpa", "flash_attention_2", "eager")
DEFAULT_ATTENTION: Attention = "sdpa"
"""Works on every device; the reference forced flash-attention 2 (bf16 near-ties can flip with the kernel)."""

DTYPES = ("auto", "bf16", "fp16", "fp32")

Strategy = Literal["uniform", "visible"]
"""How keyframes are picked in a window: spread over it, or over the frames the objects are visible on."""
STRATEGIES: tuple[Strategy, ...] = ("uniform", "visible")

Stride = int | Literal["auto"]

#: Shortest window: timed answers show tenths of a second.
MIN_WINDOW = 0.1

Decoder = Literal["auto", "decord", "torchcodec"]
"""The video decoder: decord, torchcodec, or auto (decord where it is installed, else torchcodec)."""
DECODERS: tuple[Decoder, ...] = ("auto", "decord", "torchcodec")

_DEVICE_NAME = re.compile(r"auto|cpu|cuda(:[0-9]+)?")
"""The device names garvid takes (whether the device is there is checked when it is used)."""


def _one_of(field_name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise OptionError(field_name, f"must be {_alternatives(choices)}, not {value!r}")


def _alternatives(choices: tuple[str, ...]) -> str:
    return " or ".join(choices) if len(choices) < 3 else "one of " + ", ".join(choices)


def _positive(field_name: str, value: float | None, *, zero: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise OptionError(field_name, f"must be a {'non-negative' if zero else 'positive'} number of seconds, not {value}")


def check_device_name(name: str) -> None:
    """A device garvid can name (whether it is there is checked when it is used)."""
    if not _DEVICE_NAME.fullmatch(name):
        raise OptionError("device", f"must be auto, cpu, cuda or cuda:N, not {name!r}")


def check_decoder(decoder: str, decode_device: str) -> None:
    """A decoder garvid knows, and a decode device it can use (only torchcodec decodes on a GPU)."""
    _one_of("decoder", decoder, DECODERS)
    if decode_device == "cpu":
        return
    if decode_device == "auto" or not _DEVICE_NAME.fullmatch(decode_device):
        raise OptionError("decode_device", f"must be cpu, cuda or cuda:N, not {decode_device!r}")
    if decoder == "decord":
        raise OptionError("decode_device", f"{decode_device} needs the torchcodec decoder: decord decodes on the CPU only")


def check_window(seconds: float) -> None:
    """A window length answers can be timed by: finite and at least :data:`MIN_WINDOW`."""
    if not math.isfinite(seconds):
        raise OptionError("window", f"must be a finite number of seconds, not {seconds:g}: leave it out for one answer")
    if not seconds >= MIN_WINDOW:
        raise OptionError("window", f"must be at least {MIN_WINDOW:g} s (timed answers show tenths of a second), not {seconds:g}")


def _set(group: object, name: str, value: object) -> None:
    object.__setattr__(group, name, value)  # a frozen group normalising its own field


@dataclass(frozen=True)
class ModelOptions:
    """Which GAR and how it runs: preset/folder/hub id, dtype, device, attention kernel."""

    name: str = ""  # preset (configs/models.toml), checkpoint folder or hub id; "" = the default preset
    dtype: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU), bf16, fp16 or fp32
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    attn: str = DEFAULT_ATTENTION

    def __post_init__(self) -> None:
        if not self.name:
            _set(self, "name", default_preset("models"))
        _one_of("dtype", self.dtype, DTYPES)
        _one_of("attn", self.attn, ATTENTION_IMPLEMENTATIONS)
        check_device_name(self.device)


#: Shot detection's defaults (PySceneDetect's AdaptiveDetector), chosen by measuring
#: (docs/commands.md#the-detector-and-why): a cut's score against its neighbours' at least this ratio,
#: and shots at least this many seconds long.
DEFAULT_CUT_THRESHOLD = 3.0
DEFAULT_MIN_SHOT = 0.5


@dataclass(frozen=True)
class TrackingOptions:
    """How the video is read and objects are tracked: decoder, tracker preset or checkpoint, stride,
    a frame folder's rate, cache, and the shots tracking stays within."""

    tracker: str = ""  # preset (configs/trackers.toml) or SAM2 .pt; "" = the default preset
    stride: Stride = "auto"  # track every N-th frame (plus the prompt frame); auto: from keyframes and device
    fps: float | None = None  # frame rate of a folder of frames (video files state their own)
    cache_dir: Path | None = None  # None = garvid's user cache
    use_cache: bool = True
    decoder: Decoder = "auto"  # which library decodes video files (frame folders are images)
    decode_device: str = "cpu"  # cpu, or cuda / cuda:N with torchcodec (NVDEC)
    shots: str = "auto"  # tracking never crosses a cut: auto (detected), off (one shot) or a shot-list file
    cut_threshold: float = DEFAULT_CUT_THRESHOLD
    min_shot: float = DEFAULT_MIN_SHOT

    def __post_init__(self) -> None:
        check_decoder(self.decoder, self.decode_device)
        self.shot_options  # noqa: B018 - a bad shot setting is refused here, named by its field
        if not self.tracker:
            _set(self, "tracker", default_preset("trackers"))
        _set(self, "stride", parse_stride(self.stride))
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise OptionError("fps", f"must be a positive frame rate, not {self.fps}")

    @property
    def shot_options(self) -> ShotOptions:
        """Where the video's shots come from, as ``garvid shots`` takes it."""
        return ShotOptions(self.shots, self.cut_threshold, self.min_shot)


def parse_stride(value: str | int) -> Stride:
    """A stride of at least 1, or ``auto`` (chosen once the device and keyframes are known)."""
    text = str(value).strip()
    if text == "auto":
        return "auto"
    if isinstance(value, bool) or not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise OptionError("stride", f"must be a whole number of at least 1, or auto; not {str(value)!r}")
    return int(text)


@dataclass(frozen=True)
class ShotOptions:
    """Where a video's shots come from and how cuts are detected.

    ``shots`` is ``auto`` (detected), ``off`` (the whole video is one shot) or a shot-list
    file (PySceneDetect's CSV, or JSON), read and checked against the video when it is opened.
    """

    shots: str = "auto"
    cut_threshold: float = DEFAULT_CUT_THRESHOLD  # AdaptiveDetector's adaptive_threshold
    min_shot: float = DEFAULT_MIN_SHOT  # seconds: no cut closer than this to the previous one

    def __post_init__(self) -> None:
        if not self.shots.strip():
            raise OptionError("shots", "must be auto, off or a shot-list file, not an empty name")
        if not (math.isfinite(self.cut_threshold) and self.cut_threshold > 0):
            raise OptionError("cut_threshold", f"must be a positive number, not {self.cut_threshold:g}")
        if not (math.isfinite(self.min_shot) and self.min_shot >= 0):
            raise OptionError("min_shot", f"must be zero or a positive number of seconds, not {self.min_shot:g}")

    @property
    def file(self) -> Path | None:
        """The shot-list file, or None for ``auto`` and ``off``."""
        return None if self.shots in ("auto", "off") else Path(self.shots)


@dataclass(frozen=True)
class KeyframeOptions:
    """Which frames GAR sees: keyframes per answer, how they are picked, the span, windows, protocol."""

    frames: int | None = None  # keyframes per answer; None = the protocol's
    strategy: Strategy = "uniform"
    start: float | None = None  # seconds
    end: float | None = None
    window: float | None = None  # seconds per answer; None = one answer for the span
    protocol: str | None = None  # name (configs/protocols) or TOML file; None = the default protocol

    def __post_init__(self) -> None:
        if self.frames is not None and (isinstance(self.frames, bool) or self.frames < 1):
            raise OptionError("frames", f"must be at least 1, not {self.frames}")
        _one_of("strategy", self.strategy, STRATEGIES)
        _positive("start", self.start, zero=True)
        _positive("end", self.end, zero=True)
        if self.window is not None:
            check_window(self.window)
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise OptionError("end", f"({self.end:g} s) must come after the start ({self.start:g} s)")


@dataclass(frozen=True)
class GenerationOptions:
    """Decoding settings; greedy up to 1024 new tokens like the reference."""

    max_new_tokens: int = 1024
    sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise OptionError("max_new_tokens", f"must be at least 1, not {self.max_new_tokens}")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise OptionError("temperature", f"must be a non-negative number, not {self.temperature}")
        if not 0 <= self.top_p <= 1:
            raise OptionError("top_p", f"must lie in [0, 1], not {self.top_p}")


@dataclass(frozen=True)
class PromptOptions:
    """How the prompt is built; the defaults reproduce the reference's evaluation path."""

    double_bos: bool = True
    mask_resample: MaskResample = "nearest"
    multiple_choice: bool = False
    replay_scaling: Scaling = "reference"  # the released weights' double box scaling

    def __post_init__(self) -> None:
        _one_of("mask_resample", self.mask_resample, ("nearest", "bicubic"))
        _one_of("replay_scaling", self.replay_scaling, ("reference", "single"))


@dataclass(frozen=True)
class AnswerOptions:
    """The run-wide groups of ``ask``, ``describe``, ``chat``, ``batch`` and ``eval``: everything
    a request holds besides its video, its objects and its question."""

    model: ModelOptions = field(default_factory=ModelOptions)
    tracking: TrackingOptions = field(default_factory=TrackingOptions)
    keyframes: KeyframeOptions = field(default_factory=KeyframeOptions)
    generation: GenerationOptions = field(default_factory=GenerationOptions)
    prompt: PromptOptions = field(default_factory=PromptOptions)


#: ``garvid when``'s coarse window: short enough that a moment of a few seconds fills most
#: of one (so it is not averaged away), long enough that a minute is 30 prompts.
DEFAULT_WHEN_WINDOW = 2.0
DEFAULT_WHEN_RESOLUTION = 0.25


@dataclass(frozen=True)
class WhenOptions:
    """How ``garvid when`` finds where a statement holds: the coarse window scanned, the
    resolution boundaries are refined to, and the yes-probability that counts as holding.

    Checks that need the video (a window longer than the span) happen when it is opened.
    """

    window: float = DEFAULT_WHEN_WINDOW  # seconds per coarse window
    resolution: float = DEFAULT_WHEN_RESOLUTION  # seconds: boundaries are refined down to windows this long
    threshold: float = 0.5  # P(yes) / (P(yes) + P(no)) at or above which the statement holds

    def __post_init__(self) -> None:
        check_window(self.window)
        if not (math.isfinite(self.resolution) and self.resolution > 0):
            raise OptionError("resolution", f"must be a positive number of seconds, not {self.resolution:g}")
        if self.resolution > self.window:
            raise OptionError("resolution", f"({self.resolution:g} s) must not be longer than the window ({self.window:g} s)")
        if not 0 < self.threshold < 1:
            raise OptionError("threshold", f"must lie strictly between 0 and 1, not {self.threshold:g}")


PromptsPerPass = int | Literal["auto"]
"""Prompts answered in one forward pass: a count, or ``auto`` (sized to the device's free memory)."""


def parse_prompts_per_pass(value: str | int) -> PromptsPerPass:
    """``--batch-size``: a whole number of at least 1, or ``auto``."""
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise OptionError("prompts_per_pass", f"must be a whole number of at least 1, or auto; not {str(value)!r}")
    return int(text)

