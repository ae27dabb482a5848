"""Binary mask helpers: boxes, areas and COCO run-length encoding.

Masks are ``(H, W)`` boolean arrays. Tracks keep masks as COCO RLE so that a long clip
with several objects stays small in memory and on disk.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
from pycocotools import mask as coco_mask

from garvid.errors import RegionError


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


#: Characters of one number in compressed COCO counts (5 bits each): enough for any image.
_MAX_DIGITS = 7


def _compressed_runs(text: bytes) -> np.ndarray:
    """The run lengths of compressed COCO counts (pycocotools' ``rleFrString``), vectorised.

    Each number is little-endian groups of 5 bits in characters from '0' (bit 0x20: more
    follow; 0x10 in the last: negative), and from the fourth number on each is the
    difference to the one two places back.
    """
    digits = np.frombuffer(text, np.uint8).astype(np.int64) - 48
    if digits.size == 0:
        return digits
    if digits.min() < 0 or digits.max() > 63:
        raise ValueError("its counts hold characters outside '0'..'o'")
    more = (digits & 0x20) != 0
    if more[-1]:
        raise ValueError("its counts end in the middle of a number")
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > _MAX_DIGITS:
        raise ValueError("its counts hold a number too large for any image")
    number = np.repeat(np.arange(ends.size), lengths)
    shifts = 5 * (np.arange(digits.size) - starts[number])
    values = np.zeros(ends.size, np.int64)
    np.add.at(values, number, (digits & 0x1F) << shifts)
    negative = (digits[ends] & 0x10) != 0
    values[negative] -= 1 << (5 * lengths[negative])
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])  # run 3 += run 1, run 5 += run 3, ...
    runs[2::2] = np.cumsum(values[2::2])  # run 4 += run 2, ...
    return runs


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def rle_runs(rle: object) -> np.ndarray:
    """The run lengths of a COCO RLE (background first), checked to tile its whole image.

    RegionError for anything that is not a valid RLE: pycocotools would raise on too many
    pixels but silently fill too few with uninitialised memory.
    """
    try:
        if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
            raise ValueError("it is not an object with 'size' and 'counts'")
        size, counts = rle["size"], rle["counts"]
        if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(_is_int(n) and n > 0 for n in size)):
            raise ValueError(f"its size must be two positive integers [height, width], not {size!r}")
        if isinstance(counts, list):
            if not all(_is_int(n) for n in counts):
                raise ValueError("its counts list holds non-integers")
            runs = np.array(counts, dtype=np.int64)
        elif isinstance(counts, (str, bytes)):
            runs = _compressed_runs(counts.encode("ascii", errors="replace") if isinstance(counts, str) else counts)
        else:
            raise ValueError(f"its counts must be a string or a list, not {type(counts).__name__}")
        if runs.size and runs.min() < 0:
            raise ValueError("its counts hold a negative run")
        if int(runs.sum()) != size[0] * size[1]:
            raise ValueError(f"its runs cover {int(runs.sum())} pixels, not the {size[0]}x{size[1]} = {size[0] * size[1]} of its size")
    except ValueError as error:
        raise RegionError(f"invalid RLE mask: {error}") from None
    return runs


def decode_rle(rle: RLE) -> np.ndarray:
    """Decode COCO RLE (string or bytes ``counts``, compressed or not) to a boolean mask.

    RegionError when ``rle`` is not a valid RLE (see :func:`rle_runs`).
    """
    rle_runs(rle)
    counts = rle["counts"]
    if isinstance(counts, list):
        height, width = rle["size"]
        compressed = coco_mask.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    else:
        compressed = {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return coco_mask.decode(compressed).astype(bool)
