"""Region prompts: which objects the user points at, on which frame.

Objects come from mask PNGs (or in-memory mask arrays), boxes, points or names
(``--object "the red cup"``, found on the prompt frame by a detector before tracking); each
kind is a type of :mod:`garvid.regions.kinds`. Masks follow the DAVIS/VOS convention: one
palette (indexed) or grayscale PNG (or integer array) whose pixel value N marks object N
(0 = background), or several binary PNGs (or arrays), one object each in the order given. Objects
are numbered masks first, then boxes, then points, then names, each in the order given.
GAR has five region slots, so object ids run from 1 to 5. A mask, box or point may lie on
another frame (``@TIME``) and a box or point may name its object (``N=``), see
:mod:`garvid.regions.times`: the prompts of one id on several frames are one object.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping, NamedTuple, Sequence

import numpy as np
from PIL import Image

from garvid.errors import OptionError, RegionError
from garvid.media.timing import frame_at
from garvid.regions.kinds import (  # noqa: F401 - parse_box, parse_point, check_phrase: read from here too
    Box,
    BoxPrompt,
    MaskSource,
    NamePrompt,
    Point,
    PointPrompt,
    RegionPrompt,
    as_typed,
    check_phrase,
    mask_source,
    parse_box,
    parse_point,
    region_prompts,
)

MAX_OBJECTS = 5


class ObjectName(NamedTuple):
    """An ``--object`` phrase and which of its instances it takes: 0 the best, 1 the second
    best distinct one (the phrase's second ``--object``), ..."""

    phrase: str
    rank: int


@dataclass
class RegionPrompts:
    """The objects to follow (pixel coordinates): the prompts on ``frame``, and ``anchors``,
    the prompts on other frames (``--mask PNG@TIME``, or where a detector found a named object
    again), one :class:`RegionPrompts` per frame, ascending, without anchors of their own.

    An object id names one object on every frame: prompts of the same id on several frames
    are one object, and its track is the union of what each prompt reaches within its shot.
    ``frame`` always holds a prompt unless there are no objects at all.
    """

    frame: int
    masks: dict[int, np.ndarray] = field(default_factory=dict)
    boxes: dict[int, Box] = field(default_factory=dict)
    points: dict[int, list[Point]] = field(default_factory=dict)
    objects: dict[int, ObjectName] = field(default_factory=dict)  # names a detector has yet to find
    anchors: tuple[RegionPrompts, ...] = ()

    @property
    def own_ids(self) -> list[int]:
        """The objects prompted on ``frame`` itself."""
        return sorted([*self.masks, *self.boxes, *self.points, *self.objects])

    @property
    def object_ids(self) -> list[int]:
        """Every object, prompted on ``frame`` or on an anchor."""
        return sorted({*self.own_ids, *(i for anchor in self.anchors for i in anchor.own_ids)})

    @property
    def prompt_frames(self) -> list[int]:
        """Every frame that holds a prompt, ascending."""
        return sorted({self.frame, *(anchor.frame for anchor in self.anchors)})

    @property
    def names(self) -> dict[int, str]:
        """What answers call each object (see :func:`object_names`)."""
        objects = {i: name for prompts in self.per_frame() for i, name in prompts.objects.items()}
        return object_names(self.object_ids, objects)

    def per_frame(self) -> list[RegionPrompts]:
        """The prompts of each prompt frame on their own, ascending by frame."""
        own = RegionPrompts(self.frame, self.masks, self.boxes, self.points, self.objects)
        return sorted([own, *self.anchors], key=lambda prompts: prompts.frame)

    def only(self, object_ids: Sequence[int]) -> RegionPrompts:
        """The prompts of ``object_ids`` alone (what a question about them needs tracked)."""
        keep = set(object_ids)
        return self.keep(lambda frame, object_id: object_id in keep)

    def within(self, first: int, stop: int) -> RegionPrompts:
        """The prompts on frames ``first`` to ``stop - 1`` alone (one shot's); ``frame`` becomes
        the earliest of them. Empty (no objects) when none lies there."""
        return self.keep(lambda frame, object_id: first <= frame < stop)

    def keep(self, wanted: Callable[[int, int], bool]) -> RegionPrompts:
        """The prompts for which ``wanted(frame, object_id)`` holds, re-anchored on the earliest
        frame left (the same ``frame`` when it keeps a prompt)."""
        kept = []
        for prompts in self.per_frame():
            f = prompts.frame
            part = RegionPrompts(
                frame=f,
                masks={i: m for i, m in prompts.masks.items() if wanted(f, i)},
                boxes={i: b for i, b in prompts.boxes.items() if wanted(f, i)},
                points={i: p for i, p in prompts.points.items() if wanted(f, i)},
                objects={i: o for i, o in prompts.objects.items() if wanted(f, i)},
            )
            if part.own_ids:
                kept.append(part)
        if not kept:
            return RegionPrompts(frame=self.frame)
        base = next((part for part in kept if part.frame == self.frame), kept[0])
        return replace(base, anchors=tuple(part for part in kept if part is not base))


def object_names(object_ids: Iterable[int], objects: Mapping[int, ObjectName] | None = None) -> dict[int, str]:
    """What answers call each object: its ``--object`` phrase (with its number when the phrase
    names several objects), else ``object N`` as the user numbers it."""
    objects = objects or {}
    uses = Counter(name.phrase for name in objects.values())
    names = {}
    for object_id in object_ids:
        name = objects.get(object_id)
        if name is None:
            names[object_id] = f"object {object_id}"
        else:
            names[object_id] = name.phrase if uses[name.phrase] == 1 else f"{name.phrase} (object {object_id})"
    return names


def _fit_to_frame(labels: np.ndarray, name: str, size: tuple[int, int], resize: bool, target: str) -> np.ndarray:
    width, height = size
    if labels.shape == (height, width):
        return labels
    if not resize:
        raise RegionError(
            f"mask {name} is {labels.shape[1]}x{labels.shape[0]} but {target} is {width}x{height}; "
            "pass --resize-masks to resize it (nearest neighbour)"
        )
    resized = Image.fromarray(labels.astype(np.int32), mode="I").resize((width, height), Image.NEAREST)
    return np.asarray(resized).astype(np.int64)


def load_masks(
    masks: Sequence[str | Path | np.ndarray | MaskSource], size: tuple[int, int], *, resize: bool = False, target: str = "the video"
) -> dict[int, np.ndarray]:
    """Object id -> boolean mask of ``size`` (width, height) from one label map or binary masks
    (files or in-memory arrays, see :func:`garvid.regions.kinds.mask_source`).

    ``target`` names what the masks must fit in errors ("the video", "the image").
    """
    sources = [mask_source(m) for m in masks]
    if len(sources) == 1:
        name = sources[0].name
        labels = _fit_to_frame(sources[0].label_map(), name, size, resize, target)
        values = [int(v) for v in np.unique(labels) if v != 0]
        if set(values) == {255}:  # a single binary 0/255 mask is one object
            values, labels = [1], (labels != 0).astype(np.int64)
        if not values:
            raise RegionError(f"mask {name} is empty: no pixel marks an object")
        if len(values) > MAX_OBJECTS:
            raise RegionError(f"mask {name} marks {len(values)} objects; GAR follows at most {MAX_OBJECTS}")
        result = {value: labels == value for value in values}
    else:
        if len(sources) > MAX_OBJECTS:
            raise RegionError(f"{len(sources)} masks given; GAR follows at most {MAX_OBJECTS} objects")
        result = {}
        for object_id, source in enumerate(sources, start=1):
            labels = _fit_to_frame(source.label_map(), source.name, size, resize, target)
            values = np.unique(labels[labels != 0])
            if values.size > 1:
                shown = ", ".join(str(v) for v in values[:6]) + (", ..." if values.size > 6 else "")
                raise RegionError(
                    f"mask {source.name} holds {values.size} object ids ({shown}) but a repeated --mask takes one binary "
                    "PNG per object; pass this label map as the only --mask, or save each object on its own"
                )
            if not values.size:
                raise RegionError(f"mask {source.name} (object {object_id}) is empty")
            result[object_id] = labels != 0
    too_large = [i for i in result if i > MAX_OBJECTS]
    if too_large:
        raise RegionError(
            f"mask {sources[0].name} uses object id {too_large[0]}; ids must be 1..{MAX_OBJECTS} "
            "(GAR has five region slots)"
        )
    return result


def build_region_prompts(
    *,
    mask_paths: Sequence[str | Path | np.ndarray | MaskSource] = (),
    boxes: Sequence[str] = (),
    points: Sequence[str] = (),
    objects: Sequence[str] = (),
    frame: int = 0,
    size: tuple[int, int],
    num_frames: int,
    resize_masks: bool = False,
    times: np.ndarray | None = None,
    duration: float | None = None,
) -> RegionPrompts:
    """Validate the user's prompts against the video and number the objects (see :func:`resolve_prompts`)."""
    prompts = region_prompts(mask_paths, boxes, points, objects)
    return resolve_prompts(
        prompts, frame=frame, size=size, num_frames=num_frames, resize_masks=resize_masks, times=times, duration=duration
    )


def resolve_prompts(
    prompts: Sequence[RegionPrompt],
    *,
    frame: int,
    size: tuple[int, int],
    num_frames: int,
    resize_masks: bool = False,
    times: np.ndarray | None = None,
    duration: float | None = None,
) -> RegionPrompts:
    """Each prompt checked against the video (``size`` is width, height; its frames start at
    ``times`` seconds and last ``duration`` seconds in all, needed for prompts at a time in
    seconds) and numbered, each on its frame (``frame`` unless it names one, ``@TIME``).

    The masks of one frame follow one rule (one label map keeps its labels, several binary
    masks are objects 1..n), whatever other frames hold, so the same label on two frames is
    one object. Boxes, points and names without an id (``N=``) follow the masks of every
    frame, in the order given. The result lies on ``frame`` when a prompt does, else on the
    earliest prompt frame; the prompts of other frames are its anchors.
    """
    if not prompts:
        raise RegionError('no objects given: pass --mask PNG, --box x1,y1,x2,y2, --point x,y or --object "name"')
    unknown = [p for p in prompts if not isinstance(p, (MaskSource, BoxPrompt, PointPrompt, NamePrompt))]
    if unknown:
        raise TypeError(f"no conversion to SAM2 prompts for {type(unknown[0]).__name__}: add it to resolve_prompts")
    phrases = [p.phrase() for p in prompts if isinstance(p, NamePrompt)]
    if not 0 <= frame < num_frames:
        raise RegionError(f"--mask-frame {frame} is outside the video (frames 0..{num_frames - 1})")
    placed = [p for p in prompts if not isinstance(p, NamePrompt)]
    frame_of = {id(p): _frame_of(p, frame, num_frames, times, duration) for p in placed}
    on_frames: dict[int, RegionPrompts] = {}

    def on(f: int) -> RegionPrompts:
        return on_frames.setdefault(f, RegionPrompts(frame=f))

    sources = [p for p in prompts if isinstance(p, MaskSource)]
    for f in dict.fromkeys(frame_of[id(p)] for p in sources):
        on(f).masks.update(load_masks([p for p in sources if frame_of[id(p)] == f], size, resize=resize_masks))
    marks = [p for p in prompts if isinstance(p, BoxPrompt)] + [p for p in prompts if isinstance(p, PointPrompt)]
    next_id = max((i for prompts_on in on_frames.values() for i in prompts_on.masks), default=0) + 1
    numbered = [p for p in marks if p.object_id is None]
    name_ids = range(next_id + len(numbered), next_id + len(numbered) + len(phrases))
    if name_ids.stop - 1 > MAX_OBJECTS:
        raise RegionError(f"{name_ids.stop - 1} objects given; GAR follows at most {MAX_OBJECTS}")
    ids = {id(p): next_id + n for n, p in enumerate(numbered)}
    for mark in marks:
        object_id, prompts_on = ids.get(id(mark), mark.object_id), on(frame_of[id(mark)])
        if object_id > MAX_OBJECTS:
            raise OptionError(mark.group, f"{mark.text!r}: object ids run from 1 to {MAX_OBJECTS} (GAR has five region slots)")
        if isinstance(mark, PointPrompt):
            prompts_on.points.setdefault(object_id, []).append(mark.point(size))
        elif object_id in prompts_on.boxes:
            raise RegionError(f"object {object_id} is given two boxes on frame {prompts_on.frame} (--box {mark.text!r}); SAM2 takes one")
        else:
            prompts_on.boxes[object_id] = mark.box(size)
    for n, (object_id, phrase) in enumerate(zip(name_ids, phrases)):
        on(frame).objects[object_id] = ObjectName(phrase, phrases[:n].count(phrase))
    for prompts_on in on_frames.values():
        _check_one_kind(prompts_on)
    base = on_frames[frame] if frame in on_frames else on_frames[min(on_frames)]
    return replace(base, anchors=tuple(on_frames[f] for f in sorted(on_frames) if f != base.frame))


def _frame_of(
    prompt: MaskSource | BoxPrompt | PointPrompt, frame: int, num_frames: int, times: np.ndarray | None, duration: float | None
) -> int:
    """The frame ``prompt`` lies on: ``frame``, or the one its ``@TIME`` names; OptionError
    naming the prompt when that lies beyond the video."""
    at = prompt.at
    if at is None:
        return frame
    typed = as_typed(prompt)
    if at.frame is not None:
        if at.frame >= num_frames:
            raise OptionError(prompt.group, f"{typed!r}: frame {at.frame} is beyond the video (frames 0..{num_frames - 1})")
        return at.frame
    if times is None or duration is None:
        raise TypeError("resolve_prompts needs the video's times and duration to place a prompt at a time in seconds")
    if at.seconds >= duration:
        raise OptionError(
            prompt.group,
            f"{typed!r}: {at.seconds:g} s is beyond the video, which ends at {duration:g} s "
            f"(its last frame starts at {float(times[-1]):g} s)",
        )
    return min(frame_at(times, at.seconds, duration), num_frames - 1)  # the last frame lasts until the end


def _check_one_kind(prompts: RegionPrompts) -> None:
    """RegionError when an object is given two kinds of prompt (say a mask and a box) on one frame."""
    kinds = {"a mask": prompts.masks, "a box": prompts.boxes, "points": prompts.points, "a name (--object)": prompts.objects}
    for object_id in prompts.own_ids:
        given = [kind for kind, of_kind in kinds.items() if object_id in of_kind]
        if len(given) > 1:
            raise RegionError(
                f"object {object_id} is given {' and '.join(given)} on frame {prompts.frame}: "
                "give each object one kind of prompt per frame"
            )
