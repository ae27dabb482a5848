"""Region prompts: which objects the user points at, on which frame.

Objects come from mask PNGs, boxes, points or names (``--object "the red cup"``, found
on the prompt frame by a detector before tracking). Mask files follow the DAVIS/VOS
convention: one palette (indexed) or grayscale PNG whose pixel value N marks object N
(0 = background), or several binary PNGs, one object each in the order given. Objects
are numbered masks first, then boxes, then points, then names, each in the order given.
GAR has five region slots, so object ids run from 1 to 5.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from garvid.errors import RegionError

MAX_OBJECTS = 5

Box = tuple[float, float, float, float]
Point = tuple[float, float]


class ObjectName(NamedTuple):
    """An ``--object`` phrase and which of its instances it takes: 0 the best, 1 the second
    best distinct one (the phrase's second ``--object``), ..."""

    phrase: str
    rank: int


@dataclass
class RegionPrompts:
    """The objects to follow, given on one frame of the video (pixel coordinates)."""

    frame: int
    masks: dict[int, np.ndarray] = field(default_factory=dict)
    boxes: dict[int, Box] = field(default_factory=dict)
    points: dict[int, list[Point]] = field(default_factory=dict)
    objects: dict[int, ObjectName] = field(default_factory=dict)  # names a detector has yet to find

    @property
    def object_ids(self) -> list[int]:
        return sorted([*self.masks, *self.boxes, *self.points, *self.objects])

    def only(self, object_ids: Sequence[int]) -> RegionPrompts:
        """The prompts of ``object_ids`` alone (what a question about them needs tracked)."""
        keep = set(object_ids)
        return RegionPrompts(
            frame=self.frame,
            masks={i: m for i, m in self.masks.items() if i in keep},
            boxes={i: b for i, b in self.boxes.items() if i in keep},
            points={i: p for i, p in self.points.items() if i in keep},
            objects={i: o for i, o in self.objects.items() if i in keep},
        )


#: Image formats whose compression changes pixel values: a label map saved in one gains
#: stray ids along object edges (new objects, grown ones) and cannot be trusted.
_LOSSY_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG"}


def _label_map(path: Path) -> np.ndarray:
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


def _fit_to_frame(labels: np.ndarray, path: Path, size: tuple[int, int], resize: bool, target: str) -> np.ndarray:
    width, height = size
    if labels.shape == (height, width):
        return labels
    if not resize:
        raise RegionError(
            f"mask {path} is {labels.shape[1]}x{labels.shape[0]} but {target} is {width}x{height}; "
            "pass --resize-masks to resize it (nearest neighbour)"
        )
    resized = Image.fromarray(labels.astype(np.int32), mode="I").resize((width, height), Image.NEAREST)
    return np.asarray(resized).astype(np.int64)


def load_masks(
    paths: Sequence[Path], size: tuple[int, int], *, resize: bool = False, target: str = "the video"
) -> dict[int, np.ndarray]:
    """Object id -> boolean mask of ``size`` (width, height) from one label map or binary PNGs.

    ``target`` names what the masks must fit in errors ("the video", "the image").
    """
    paths = [Path(p) for p in paths]
    if len(paths) == 1:
        labels = _fit_to_frame(_label_map(paths[0]), paths[0], size, resize, target)
        values = [int(v) for v in np.unique(labels) if v != 0]
        if set(values) == {255}:  # a single binary 0/255 mask is one object
            values, labels = [1], (labels != 0).astype(np.int64)
        if not values:
            raise RegionError(f"mask {paths[0]} is empty: no pixel marks an object")
        if len(values) > MAX_OBJECTS:
            raise RegionError(f"mask {paths[0]} marks {len(values)} objects; GAR follows at most {MAX_OBJECTS}")
        masks = {value: labels == value for value in values}
    else:
        if len(paths) > MAX_OBJECTS:
            raise RegionError(f"{len(paths)} masks given; GAR follows at most {MAX_OBJECTS} objects")
        masks = {}
        for object_id, path in enumerate(paths, start=1):
            labels = _fit_to_frame(_label_map(path), path, size, resize, target)
            values = np.unique(labels[labels != 0])
            if values.size > 1:
                shown = ", ".join(str(v) for v in values[:6]) + (", ..." if values.size > 6 else "")
                raise RegionError(
                    f"mask {path} holds {values.size} object ids ({shown}) but a repeated --mask takes one binary "
                    "PNG per object; pass this label map as the only --mask, or save each object on its own"
                )
            if not values.size:
                raise RegionError(f"mask {path} (object {object_id}) is empty")
            masks[object_id] = labels != 0
    too_large = [i for i in masks if i > MAX_OBJECTS]
    if too_large:
        raise RegionError(
            f"mask {paths[0]} uses object id {too_large[0]}; ids must be 1..{MAX_OBJECTS} "
            "(GAR has five region slots)"
        )
    return masks


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


def build_region_prompts(
    *,
    mask_paths: Sequence[Path] = (),
    boxes: Sequence[str] = (),
    points: Sequence[str] = (),
    objects: Sequence[str] = (),
    frame: int = 0,
    size: tuple[int, int],
    num_frames: int,
    resize_masks: bool = False,
) -> RegionPrompts:
    """Validate the user's prompts against the video and number the objects."""
    if not (mask_paths or boxes or points or objects):
        raise RegionError('no objects given: pass --mask PNG, --box x1,y1,x2,y2, --point x,y or --object "name"')
    phrases = [check_phrase(text) for text in objects]
    if not 0 <= frame < num_frames:
        raise RegionError(f"--mask-frame {frame} is outside the video (frames 0..{num_frames - 1})")
    masks = load_masks(mask_paths, size, resize=resize_masks) if mask_paths else {}
    next_id = max(masks, default=0) + 1
    box_ids = range(next_id, next_id + len(boxes))
    point_ids = range(box_ids.stop, box_ids.stop + len(points))
    object_ids = range(point_ids.stop, point_ids.stop + len(phrases))
    if object_ids.stop - 1 > MAX_OBJECTS:
        raise RegionError(f"{object_ids.stop - 1} objects given; GAR follows at most {MAX_OBJECTS}")
    return RegionPrompts(
        frame=frame,
        masks=masks,
        boxes={i: parse_box(text, size) for i, text in zip(box_ids, boxes)},
        points={i: [parse_point(text, size)] for i, text in zip(point_ids, points)},
        objects={i: ObjectName(phrase, phrases[:n].count(phrase)) for n, (i, phrase) in enumerate(zip(object_ids, phrases))},
    )
