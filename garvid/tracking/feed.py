"""Frames for SAM2, decoded on demand: the ``images`` entry of its inference state.

SAM2 only indexes ``images[i]`` (and takes ``len``). sam2's own loaders decode the whole
video (or a JPEG folder) up front; this feed decodes the tracked frames in batches as
SAM2 asks for them and keeps a bounded LRU of resized frames, so memory does not grow
with the length of the video.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from garvid.media.source import FrameSource

#: sam2's image normalisation (ImageNet mean and std), as in sam2.utils.misc.load_video_frames.
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


def resize_frame(rgb: np.ndarray, image_size: int) -> torch.Tensor:
    """An ``(H, W, 3)`` uint8 frame as a ``(3, S, S)`` uint8 tensor, resized like sam2's loader.

    sam2 resizes with PIL to a square, bicubic, without keeping the aspect ratio.
    """
    resized = np.array(Image.fromarray(rgb).resize((image_size, image_size), Image.BICUBIC))
    return torch.from_numpy(resized).permute(2, 0, 1).contiguous()


def normalize_frame(resized: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A ``(3, S, S)`` uint8 frame as SAM2's float input on ``device``: [0, 1], minus mean, over std."""
    image = resized.to(device).float().div_(255.0)
    mean = torch.tensor(IMAGE_MEAN, device=device)[:, None, None]
    std = torch.tensor(IMAGE_STD, device=device)[:, None, None]
    return image.sub_(mean).div_(std)


class FrameFeed:
    """``feed[i]`` is tracked frame ``frames[i]`` of ``video``, prepared for SAM2 on ``device``.

    On a miss it decodes ``batch_size`` tracked frames in one ascending decord pass,
    onward in the direction SAM2 is walking (forward, or backward for reverse tracking,
    where bigger batches save re-seeking to the same keyframe), and keeps at most
    ``2 * batch_size`` resized uint8 frames.
    """

    def __init__(
        self, video: FrameSource, frames: Sequence[int], image_size: int, device: torch.device, *, batch_size: int = 16
    ):
        self.video = video
        self.frames = list(frames)
        self.image_size = image_size
        self.device = device
        self.batch_size = batch_size
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._last = -1

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < len(self.frames):
            raise IndexError(f"tracked frame {index} out of range (0..{len(self.frames) - 1})")
        backward = index < self._last
        self._last = index
        if index not in self._cache:
            self._decode(index, backward)
        self._cache.move_to_end(index)
        return normalize_frame(self._cache[index], self.device)

    def _decode(self, index: int, backward: bool) -> None:
        step = -1 if backward else 1
        ahead = range(index, index + step * self.batch_size, step)
        wanted = sorted(i for i in ahead if 0 <= i < len(self.frames) and i not in self._cache)
        # a few full-size frames at a time: 4K RGB is 25 MB a frame
        decoded = self.video.iter_frames([self.frames[i] for i in wanted], batch_size=4)
        for i, (_, rgb) in zip(wanted, decoded):
            self._cache[i] = resize_frame(rgb, self.image_size)
        # SAM2 takes far longer per frame than decoding: stop decord's read-ahead meanwhile
        self.video.drop_read_ahead()
        # the cache holds two batches, so the batch just decoded is never evicted
        while len(self._cache) > 2 * self.batch_size:
            self._cache.popitem(last=False)
