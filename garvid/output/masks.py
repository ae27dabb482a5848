"""Prompt-frame masks written for people and for ``--mask``: a DAVIS-style palette PNG
(pixel value N = object N, 0 = background, colours those of the overlays) and a preview
image drawn like ``--render``'s overlays."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
from PIL import Image

from garvid.files import atomic_path
from garvid.output.overlay import OBJECT_COLOURS, draw_overlay


def label_map(masks: Mapping[int, np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` uint8 labels of ``size`` (width, height); where masks overlap the lowest id wins."""
    width, height = size
    labels = np.zeros((height, width), np.uint8)
    for object_id in sorted(masks, reverse=True):  # lower ids painted last, so they stay on top
        labels[np.asarray(masks[object_id], bool)] = object_id
    return labels


def write_label_png(labels: np.ndarray, path: Path) -> None:
    """Write ``labels`` atomically as a palette PNG with the overlay colours (DAVIS convention)."""
    palette = [0, 0, 0] + [channel for colour in OBJECT_COLOURS for channel in colour]
    image = Image.fromarray(labels, mode="P")
    image.putpalette(palette + [0] * (768 - len(palette)))
    with atomic_path(Path(path)) as temp:
        image.save(temp, format="PNG")


def write_preview(frame: np.ndarray, labels: np.ndarray, path: Path) -> None:
    """Write ``frame`` with each labelled object blended, outlined and numbered (PNG or JPEG by suffix)."""
    masks = {int(v): labels == v for v in np.unique(labels) if v}
    image = Image.fromarray(draw_overlay(frame, masks))
    with atomic_path(Path(path)) as temp:
        image.save(temp, format="JPEG" if Path(path).suffix.lower() in (".jpg", ".jpeg") else "PNG")
