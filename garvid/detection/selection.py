"""Which detected instance becomes which object: the selection rules, on the detectors'
post-processed output (scores, ``xyxy`` pixel boxes and, for SAM 3, masks).

Each phrase is looked for once. Its k-th occurrence among the ``--object`` options takes
the k-th best *distinct* instance scoring above the threshold: best first, and an instance
whose box overlaps an already chosen one by IoU >= ``DISTINCT_IOU`` is the same object seen
twice (detectors return many near-duplicates of one object).

Found again (``--redetect``, :func:`match_instances`): on later frames of a shot the
detector runs again, and each object takes the instance that continues it. The objects of a
phrase that were found earlier in the shot are matched to the distinct instances by box
overlap (IoU) with their last found box, the assignment that maximises the summed IoU
(exact); a pair that does not overlap is no match. The other objects (not found yet in this
shot, or matching nothing) take the distinct instances left, best first, by rank: the rank
minus the phrase's matched objects of lower rank, so that on a shot's first detection frame
every object takes its rank's instance as on the prompt frame. An object whose turn lands
past the instances left is not on that frame (it left the picture).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from garvid.errors import RegionError
from garvid.regions.prompts import Box

#: Boxes overlapping at least this much (intersection over union) are one instance.
DISTINCT_IOU = 0.5


@dataclass(frozen=True)
class Candidates:
    """A detector's instances of one phrase on one frame, in any order."""

    scores: np.ndarray  # (N,) float in [0, 1]
    boxes: np.ndarray  # (N, 4) float pixels x1, y1, x2, y2
    masks: np.ndarray | None = None  # (N, H, W) bool, for detectors that segment


@dataclass(frozen=True)
class Instance:
    """One chosen instance: the object a phrase names."""

    phrase: str
    score: float
    box: tuple[float, float, float, float]  # pixels x1, y1, x2, y2
    mask: np.ndarray | None  # (H, W) bool, or None for a box-only detector


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one ``xyxy`` box with each of ``others`` (M, 4)."""
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)  # noqa: E731
    union = area(box) + area(others) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def distinct_indices(candidates: Candidates, threshold: float, count: int | None = None) -> list[int]:
    """Indices of the distinct instances scoring above ``threshold``, best first (at most ``count``)."""
    scores = np.asarray(candidates.scores, dtype=np.float64).reshape(-1)
    boxes = np.asarray(candidates.boxes, dtype=np.float64).reshape(-1, 4)
    chosen: list[int] = []
    for index in np.argsort(-scores, kind="stable"):
        if len(chosen) == count or not scores[index] > threshold:
            break
        if chosen and (box_iou(boxes[index], boxes[chosen]) >= DISTINCT_IOU).any():
            continue
        chosen.append(int(index))
    return chosen


def select_instances(candidates: Candidates, phrase: str, count: int, threshold: float, frame: int) -> list[Instance]:
    """The ``count`` best distinct instances scoring above ``threshold``, best first.

    RegionError naming the phrase, the frame and the best score seen when there are fewer.
    """
    scores = np.asarray(candidates.scores, dtype=np.float64).reshape(-1)
    chosen = distinct_indices(candidates, threshold, count)
    if len(chosen) < count:
        best = f"the best scores {scores.max():.3f}" if scores.size else "the detector found nothing"
        hint = "give --mask-frame N for a frame where it shows, or a lower --object-threshold"
        if not chosen:
            raise RegionError(f"no instance of {phrase!r} on frame {frame} scores above {threshold:g} ({best}): {hint}")
        raise RegionError(
            f"{phrase!r} is given {count} times but frame {frame} has only {len(chosen)} distinct instance(s) "
            f"scoring above {threshold:g}: {hint}"
        )
    return [instance(candidates, phrase, i) for i in chosen]


def instance(candidates: Candidates, phrase: str, index: int) -> Instance:
    """Candidate ``index`` as an :class:`Instance` of ``phrase``."""
    masks = candidates.masks
    return Instance(
        phrase=phrase,
        score=float(np.asarray(candidates.scores).reshape(-1)[index]),
        box=tuple(float(v) for v in np.asarray(candidates.boxes, dtype=np.float64).reshape(-1, 4)[index]),  # type: ignore[arg-type]
        mask=None if masks is None else np.array(masks[index], dtype=bool),  # a copy: the other masks are freed
    )


def match_instances(
    candidates: Candidates, phrase: str, ranks: Mapping[int, int], previous: Mapping[int, Box], threshold: float
) -> dict[int, Instance]:
    """Object id -> its instance of ``phrase`` on a frame where the detector runs again.

    ``ranks`` holds the phrase's objects (object id -> rank), ``previous`` the last box found
    of those found earlier in the shot. The rule is this module's (found again); objects that
    take nothing are left out.
    """
    distinct = distinct_indices(candidates, threshold)
    boxes = np.asarray(candidates.boxes, dtype=np.float64).reshape(-1, 4)[distinct]
    tracked = [object_id for object_id in sorted(ranks) if object_id in previous]
    overlap = np.array([box_iou(np.asarray(previous[o], dtype=np.float64), boxes) for o in tracked]).reshape(len(tracked), len(distinct))
    matched = {tracked[row]: distinct[column] for row, column in best_assignment(overlap).items()}
    left = [i for i in distinct if i not in matched.values()]
    chosen = dict(matched)
    for object_id, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if object_id in matched:
            continue
        turn = rank - sum(1 for o in matched if ranks[o] < rank)
        if turn < len(left):
            chosen[object_id] = left[turn]
    return {object_id: instance(candidates, phrase, index) for object_id, index in sorted(chosen.items())}


def best_assignment(overlap: np.ndarray) -> dict[int, int]:
    """Row -> column pairs, each row and column used at most once, maximising the summed
    ``overlap`` (R, C); pairs of overlap 0 are left out. Exact: a dynamic programme over the
    subsets of rows (``R`` is at most the 5 objects GAR follows), one column at a time."""
    rows, columns = overlap.shape
    best: dict[int, tuple[float, tuple[tuple[int, int], ...]]] = {0: (0.0, ())}  # rows used -> total, pairs
    for column in range(columns):
        step = dict(best)
        for used, (total, pairs) in best.items():
            for row in range(rows):
                if used & (1 << row) or not overlap[row, column] > 0:
                    continue
                candidate = (total + float(overlap[row, column]), (*pairs, (row, column)))
                key = used | (1 << row)
                if key not in step or candidate[0] > step[key][0]:
                    step[key] = candidate
        best = step
    _, pairs = max(best.values(), key=lambda entry: entry[0])
    return dict(pairs)
