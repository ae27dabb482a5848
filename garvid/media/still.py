"""One image as a one-frame :class:`FrameSource`, so an image goes through the same prompt
resolution (detector, SAM2's prompt encoder) as the prompt frame of a video."""

from __future__ import annotations

import numpy as np

from garvid.errors import VideoError
from garvid.media.source import FrameSource, VideoInfo


class StillImage(FrameSource):
    """Frame 0 is ``rgb`` ``(H, W, 3)`` uint8; ``name`` is the image's path, for messages."""

    def __init__(self, rgb: np.ndarray, name: str):
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise VideoError(f"{name}: expected an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
        self._rgb, self._name = rgb, name
        self._times = np.zeros(1)
        height, width = rgb.shape[:2]
        self.info = VideoInfo(path=name, num_frames=1, fps=1.0, width=width, height=height, duration=1.0, rotation=0, decoder="pillow")

    def _decode_ascending(self, indices: np.ndarray) -> np.ndarray:
        return np.repeat(self._rgb[None], len(indices), axis=0)
