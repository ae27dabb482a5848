"""Which detected instance becomes which object: the selection rules, on the detectors'
post-processed output (scores, ``xyxy`` pixel boxes and, for SAM 3, masks).

Each phrase is looked for once. Its k-th occurrence among the ``--object`` options takes
the k-th best *distinct* instance scoring above the threshold: best first, and an instance
whose box overlaps an already chosen one by IoU >= ``DISTINCT_IOU`` is the same object seen
twice (detectors return many near-duplicates of one object).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from garvid.errors import RegionError

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


def select_instances(candidates: Candidates, phrase: str, count: int, threshold: float, frame: int) -> list[Instance]:
    """The ``count`` best distinct instances scoring above ``threshold``, best first.

    RegionError naming the phrase, the frame and the best score seen when there are fewer.
    """
    scores = np.asarray(candidates.scores, dtype=np.float64).reshape(-1)
    boxes = np.asarray(candidates.boxes, dtype=np.float64).reshape(-1, 4)
    chosen: list[int] = []
    for index in np.argsort(-scores, kind="stable"):
        if len(chosen) == count or not scores[index] > threshold:
            break
        if chosen and (box_iou(boxes[index], boxes[chosen]) >= DISTINCT_IOU).any():
            continue
        chosen.append(int(index))
    if len(chosen) < count:
        best = f"the best scores {scores.max():.3f}" if scores.size else "the detector found nothing"
        hint = "give --mask-frame N for a frame where it shows, or a lower --object-threshold"
        if not chosen:
            raise RegionError(f"no instance of {phrase!r} on frame {frame} scores above {threshold:g} ({best}): {hint}")
        raise RegionError(
            f"{phrase!r} is given {count} times but frame {frame} has only {len(chosen)} distinct instance(s) "
            f"scoring above {threshold:g}: {hint}"
        )
    masks = candidates.masks
    return [
        Instance(
            phrase=phrase,
            score=float(scores[i]),
            box=tuple(float(v) for v in boxes[i]),  # type: ignore[arg-type]
            mask=None if masks is None else np.asarray(masks[i], dtype=bool),
        )
        for i in chosen
    ]
