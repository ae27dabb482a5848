"""Binary mask helpers: boxes, areas and COCO run-length encoding.

Masks are ``(H, W)`` boolean arrays. Tracks keep masks as COCO RLE so that a long clip
with several objects stays small in memory and on disk.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
from pycocotools import mask as coco_mask


class RLE(TypedDict):
    """COCO run-length encoding with a JSON-safe (str) ``counts``."""

    size: list[int]
    counts: str


BBox = tuple[int, int, int, int]


def mask_bbox(mask: np.ndarray) -> BBox | None:
    """Inclusive pixel box ``(x1, y1, x2, y2)`` of a mask, or None when it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def encode_rle(mask: np.ndarray) -> RLE:
    """Encode an ``(H, W)`` boolean mask as COCO RLE with a UTF-8 string ``counts``."""
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def decode_rle(rle: RLE) -> np.ndarray:
    """Decode COCO RLE (string or bytes ``counts``, compressed or not) to a boolean mask."""
    counts = rle["counts"]
    if isinstance(counts, list):
        height, width = rle["size"]
        compressed = coco_mask.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    else:
        compressed = {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return coco_mask.decode(compressed).astype(bool)
