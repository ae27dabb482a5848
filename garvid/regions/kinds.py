"""The kinds of region prompt, one small type each: a mask file, an in-memory mask, a box,
a point, an object name. A mask, a box or a point may lie on a frame of its own (``@TIME``,
:mod:`garvid.regions.times`), and a box or a point may name its object (``N=``).

Every kind says what decides the masks it leads to, as :meth:`RegionPrompt.digest` (file or
array content, a box or point as typed, a phrase; with the object id and time as typed), and how it becomes what SAM2 takes: a
mask source gives a label map (:meth:`MaskSource.label_map`), a box or a point its pixel
coordinates, a name the phrase a detector looks for. ``digest`` is abstract, so a kind
without one cannot be built (``TypeError`` on construction); :func:`region_prompts` is the
one place the fields of a :class:`~garvid.regions.input.RegionInput` become prompts, and
both the prompts' conversion and the tracking cache key read its result, so a prompt that
is tracked is also in the key.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, Iterable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from garvid.errors import GarvidError, RegionError
from garvid.regions.times import PromptTime, parse_time, split_object_id, split_time

Box = tuple[float, float, float, float]
Point = tuple[float, float]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (hex), read in chunks; GarvidError naming the file if unreadable
    or not a regular file (a device or a FIFO would be read without end)."""
    if Path(path).exists() and not Path(path).is_file():
        raise GarvidError(f"{path} is not a regular file: refusing to read it")
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as error:
        raise GarvidError(f"cannot read {path}: {error.strerror or error}") from None


class RegionPrompt(ABC):
    """One prompt as the user gave it, before it is checked against a video.

    ``group`` names the list of the tracking cache key its digest joins (``masks``,
    ``boxes``, ``points``, ``phrases``), in the order the prompts were given, and the
    :class:`~garvid.regions.input.RegionInput` field errors name. ``at`` is the frame it lies
    on when the user named one (else the prompt frame); ``object_id`` the object a box or a
    point names (else it is numbered with the others).
    """

    group: ClassVar[str]
    at: PromptTime | None = None
    object_id: int | None = None

    @abstractmethod
    def digest(self) -> str:
        """What decides this prompt's mask, as a string: equal for prompts that give the same
        mask on the same frame, different otherwise (a mask's content, not its file name)."""

    def _placed(self, content: str) -> str:
        """``content`` (a digest) with the object id and the time as typed: the same prompt at
        another time or for another object is another prompt; a plain prompt's is ``content``."""
        named = f"{self.object_id}=" if self.object_id is not None else ""
        return named + content + (f"@{self.at}" if self.at is not None else "")


class MaskSource(RegionPrompt):
    """A label map: pixel value N marks object N (0 is background), or a binary mask of one object."""

    group = "masks"

    @property
    @abstractmethod
    def name(self) -> str:
        """How errors name this mask."""

    @abstractmethod
    def label_map(self) -> np.ndarray:
        """The ``(H, W)`` int64 labels as given (before fitting them to a frame)."""


class MaskFile(MaskSource):
    """A palette or grayscale mask PNG (colour and lossy images are refused), ``PNG@TIME`` on a
    frame of its own; a file whose whole name holds ``@`` is read as that file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if "@" in str(path) and not self.path.is_file():
            text, self.at = split_time(str(path), self.group)
            self.path = Path(text)

    @property
    def name(self) -> str:
        return str(self.path) + (f"@{self.at}" if self.at is not None else "")

    def digest(self) -> str:
        """The SHA-256 of the file's bytes: renaming the file keeps it, editing it changes it."""
        return self._placed(file_sha256(self.path))

    def label_map(self) -> np.ndarray:
        return _read_label_map(self.path)

    def __repr__(self) -> str:
        return f"MaskFile({self.name!r})"


class MaskArray(MaskSource):
    """An in-memory mask: an ``(H, W)`` integer label array, or a boolean mask of one object.

    The array is copied and frozen, so its digest stays true; two ``MaskArray`` are equal
    when their contents (shape, dtype and values) and times are. ``at`` puts it on a frame of
    its own, as ``TIME`` is typed after ``--mask PNG@`` (``"f40"``, ``"4.5"``).
    """

    def __init__(self, array: np.ndarray | MaskArray, at: str | None = None):
        if isinstance(array, MaskArray) and at is None:
            self.at = array.at
        elif at is not None:
            self.at = parse_time(at, self.group, f"(an in-memory array)@{at}")
        labels = array.array if isinstance(array, MaskArray) else np.array(array, copy=True)
        if labels.ndim != 2 or labels.dtype.kind not in "biu" or 0 in labels.shape:
            raise RegionError(
                f"an in-memory mask must be a 2-D integer or boolean array (height, width), not {labels.ndim}-D "
                f"{labels.dtype} of shape {labels.shape}"
            )
        if labels.dtype.kind == "i" and (labels < 0).any():
            raise RegionError("an in-memory mask holds negative labels: pixel value N marks object N, 0 the background")
        labels.setflags(write=False)
        self.array = labels
        header = json.dumps({"shape": list(labels.shape), "dtype": labels.dtype.str})
        self._digest = self._placed(hashlib.sha256(header.encode() + np.ascontiguousarray(labels).tobytes()).hexdigest())

    @property
    def name(self) -> str:
        return "(an in-memory array)" + (f"@{self.at}" if self.at is not None else "")

    def digest(self) -> str:
        """The SHA-256 of the array's shape, dtype and values (and its time)."""
        return self._digest

    def label_map(self) -> np.ndarray:
        return self.array.astype(np.int64)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MaskArray) and other._digest == self._digest

    def __hash__(self) -> int:
        return hash(self._digest)

    def __repr__(self) -> str:
        height, width = self.array.shape
        return f"MaskArray({width}x{height} {self.array.dtype}, sha256 {self._digest[:12]}" + (f" @{self.at})" if self.at else ")")


class _PlacedText(RegionPrompt):
    """A prompt typed as ``[N=]COORDINATES[@TIME]``: ``coordinates`` is the middle part."""

    def __init__(self, text: str):
        self.text = text
        rest, self.at = split_time(text, self.group)
        self.object_id, self.coordinates = split_object_id(rest, self.group)

    def digest(self) -> str:
        """The prompt as typed (its time canonically)."""
        return self._placed(self.coordinates)


class BoxPrompt(_PlacedText):
    """``x1,y1,x2,y2`` in pixels; SAM2's prompt encoder turns it into a mask."""

    group = "boxes"

    def box(self, size: tuple[int, int]) -> Box:
        return parse_box(self.coordinates, size)


class PointPrompt(_PlacedText):
    """``x,y`` in pixels, a positive click; SAM2's prompt encoder turns it into a mask. The
    points of one object id on one frame are one object's clicks."""

    group = "points"

    def point(self, size: tuple[int, int]) -> Point:
        return parse_point(self.coordinates, size)


class NamePrompt(RegionPrompt):
    """An ``--object`` phrase: a detector finds it on the prompt frame, as a mask or a box.

    The detector and its threshold decide what is found too; they are settings of the
    whole input, so the cache key holds them once beside the phrases.
    """

    group = "phrases"

    def __init__(self, text: str):
        self.text = text

    def digest(self) -> str:
        """The phrase with its spaces collapsed (as the detector reads it)."""
        return " ".join(str(self.text).split())

    def phrase(self) -> str:
        return check_phrase(self.text)


def region_prompts(
    masks: Iterable[str | Path | np.ndarray | MaskSource] = (),
    boxes: Iterable[str] = (),
    points: Iterable[str] = (),
    objects: Iterable[str] = (),
) -> list[RegionPrompt]:
    """The prompts of the user's fields, in the order objects are numbered: masks, boxes,
    points, names. Arrays become :class:`MaskArray`, paths :class:`MaskFile`."""
    return [
        *(mask_source(m) for m in masks),
        *(BoxPrompt(text) for text in boxes),
        *(PointPrompt(text) for text in points),
        *(NamePrompt(text) for text in objects),
    ]


def mask_source(mask: str | Path | np.ndarray | MaskSource) -> MaskSource:
    """A mask as given: a file path, an array, or already a :class:`MaskSource`."""
    if isinstance(mask, MaskSource):
        return mask
    if isinstance(mask, np.ndarray):
        return MaskArray(mask)
    return MaskFile(mask)


def as_typed(prompt: RegionPrompt) -> str:
    """How errors quote ``prompt``: as the user typed it (a mask by its name, time included)."""
    return prompt.name if isinstance(prompt, MaskSource) else str(getattr(prompt, "text", prompt))


def digests(prompts: Sequence[RegionPrompt]) -> dict[str, list[str]]:
    """Each prompt's digest, in the list of its kind's group, in the order given."""
    groups: dict[str, list[str]] = {}
    for prompt in prompts:
        groups.setdefault(prompt.group, []).append(prompt.digest())
    return groups


# --- parsing and reading, shared by the kinds above -------------------------------------

#: Image formats whose compression changes pixel values: a label map saved in one gains
#: stray ids along object edges (new objects, grown ones) and cannot be trusted.
_LOSSY_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG"}


def _read_label_map(path: Path) -> np.ndarray:
    """Read a mask PNG as an integer label map (H, W); colour and lossy images are refused."""
    if not path.is_file():
        raise RegionError(f"mask file not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()
    except (UnidentifiedImageError, OSError) as error:
        raise RegionError(f"cannot read mask {path}: not an image ({error})") from None
    if image.format in _LOSSY_FORMATS:
        raise RegionError(
            f"mask {path} is a {_LOSSY_FORMATS[image.format]} file, whose lossy compression adds stray object "
            "ids along edges; save the mask as PNG (palette or grayscale, pixel value N marks object N)"
        )
    if image.mode in ("P", "L", "1", "I", "I;16"):
        return np.asarray(image).astype(np.int64)
    if image.mode in ("LA", "PA"):
        return np.asarray(image)[..., 0].astype(np.int64)
    rgb = np.asarray(image.convert("RGB"))
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        return rgb[..., 0].astype(np.int64)
    raise RegionError(
        f"mask {path} is an RGB colour image, not a label map: save it as a palette (indexed) "
        "or grayscale PNG where pixel value N marks object N, or as one binary PNG per object"
    )


def _parse_numbers(text: str, count: int, what: str, example: str) -> tuple[float, ...]:
    parts = text.replace(" ", "").split(",")
    try:
        numbers = tuple(float(p) for p in parts)
    except ValueError:
        numbers = ()
    if len(numbers) != count:
        raise RegionError(f"bad {what} {text!r}: expected {count} comma-separated numbers like {example}")
    return numbers


def parse_box(text: str, size: tuple[int, int]) -> Box:
    """Parse ``x1,y1,x2,y2`` (pixels) and check it is a non-empty box inside the frame."""
    x1, y1, x2, y2 = _parse_numbers(text, 4, "box", "10,20,200,180")
    width, height = size
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise RegionError(f"box {text!r} must satisfy 0 <= x1 < x2 <= {width} and 0 <= y1 < y2 <= {height}")
    return x1, y1, x2, y2


def parse_point(text: str, size: tuple[int, int]) -> Point:
    """Parse ``x,y`` (pixels) and check it lies inside the frame."""
    x, y = _parse_numbers(text, 2, "point", "320,240")
    width, height = size
    if not (0 <= x < width and 0 <= y < height):
        raise RegionError(f"point {text!r} lies outside the {width}x{height} frame")
    return x, y


def check_phrase(text: str) -> str:
    """An ``--object`` phrase stripped of outer spaces; RegionError when nothing is left."""
    phrase = " ".join(str(text).split())
    if not phrase:
        raise RegionError("empty --object phrase: name the object, e.g. --object \"the red cup\"")
    return phrase
