"""What every video input is: frames with timestamps, read on demand.

:class:`FrameSource` holds what video files and frame folders share (ordering, batching,
index checks); :class:`VideoInfo` describes the clip in display orientation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from garvid.errors import VideoError

#: Frames read per call of a source's decoder (bounds the transient memory: the decoder's
#: buffer and its copy into numpy, each DECODE_BATCH frames).
DECODE_BATCH = 8


@dataclass(frozen=True)
class VideoInfo:
    """What a video is: frame count, rate and display size (after rotation)."""

    path: str
    num_frames: int
    fps: float
    width: int  # display width: rotation already applied
    height: int
    duration: float  # seconds, from the first frame's start to the last frame's end
    rotation: int  # clockwise degrees (0, 90, 180, 270) the stored frames are turned for display
    # what read the frames: decord, torchcodec ("torchcodec on cuda:0" on a GPU) or pillow
    # (frame folders, images); "" when unknown (a tracks file of an older garvid). Not part
    # of any content key: both video decoders give the same frames (tests/test_decoders.py).
    decoder: str = field(default="", compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "fps": self.fps,
            "num_frames": self.num_frames,
            "duration": self.duration,
            "width": self.width,
            "height": self.height,
            **({"decoder": self.decoder} if self.decoder else {}),
        }


class FrameSource:
    """Frames with timestamps, read on demand: a video file or a folder of frames.

    Subclasses set ``info``, ``_name`` and ``_times`` and read strictly ascending frames
    in ``_decode_ascending``; everything else (ordering, batching, checks) is shared.
    """

    info: VideoInfo
    _name: str
    _times: np.ndarray

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def timestamps(self) -> np.ndarray:
        """Presentation time in seconds of every frame, ``(num_frames,)`` float64.

        For video files, from the container's timestamps relative to the first frame (so
        variable frame rates come out right), to decord's float32 precision rounded to
        microseconds; ``index / fps`` when the container has none, and for frame folders.
        """
        return self._times.copy()

    def time_of(self, index: int) -> float:
        """Presentation time in seconds of frame ``index``."""
        self._check_indices(np.asarray([index]))
        return float(self._times[index])

    def frames(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` as ``(N, H, W, 3)`` uint8 RGB, in the order given.

        Repeated indices are decoded once; all N frames are returned at once, so use
        :meth:`iter_frames` for long selections.
        """
        wanted = self._check_indices(np.asarray(indices))
        if 0 < wanted.size <= DECODE_BATCH and (np.diff(wanted) > 0).all():
            return self._decode_ascending(wanted)  # the common case, without a second buffer
        out = np.empty((wanted.size, self.info.height, self.info.width, 3), dtype=np.uint8)
        unique, order = np.unique(wanted, return_inverse=True)
        for start in range(0, unique.size, DECODE_BATCH):
            chunk = unique[start : start + DECODE_BATCH]
            batch = self._decode_ascending(chunk)
            for position in np.flatnonzero((order >= start) & (order < start + chunk.size)):
                out[position] = batch[order[position] - start]
        return out

    def iter_frames(self, indices: Sequence[int], batch_size: int = 8) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, frame)`` in the order given, decoding ``batch_size`` frames at a time.

        The frames of one batch are views of one array: ``.copy()`` a frame you keep past
        its batch, or the whole batch stays in memory with it. (Copying every frame here
        instead costs little time but makes glibc's heap fragment badly on long videos.)
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        wanted = self._check_indices(np.asarray(indices))
        for start in range(0, wanted.size, batch_size):
            chunk = wanted[start : start + batch_size]
            yield from zip(chunk.tolist(), self.frames(chunk))

    def scan(self) -> Iterator[np.ndarray]:
        """Every frame once, in order: one forward pass over the whole input (cut detection).

        Each frame is valid until the next is yielded (it may be one reused buffer); memory
        does not grow with the input's length.
        """
        for _, frame in self.iter_frames(range(self.info.num_frames)):
            yield frame

    def _check_indices(self, indices: np.ndarray) -> np.ndarray:
        if indices.size == 0:
            return indices.reshape(0).astype(np.int64)
        if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
            raise TypeError(f"frame indices must be a flat sequence of integers, got {indices.dtype} {indices.shape}")
        count = self.info.num_frames
        bad = indices[(indices < 0) | (indices >= count)]
        if bad.size:
            raise VideoError(
                f"{self._name}: frame {int(bad[0])} is out of range; the video has {count} frames (0..{count - 1})"
            )
        return indices.astype(np.int64)

    def close(self) -> None:
        """Release the reader; no frame can be read after."""

    def frames_key(self) -> str:
        """What besides the input's content decides its frames: ``""`` when any reader gives
        the same frames (content keys such as the tracking cache's then hold for every
        decoder), else a name for this reader's frames, which such keys add.

        Both video decoders give the same 8-bit RGB frames pixel for pixel; they differ on
        video of more than 8 bits a sample, which the torchcodec reader says here.
        """
        return ""

    def drop_read_ahead(self) -> None:
        """Free frames decoded ahead of the last read (only decoders that read ahead hold any)."""

    def _decode_ascending(self, indices: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def scaled_size(width: int, height: int, max_width: int) -> tuple[int, int]:
    """``(width, height)`` scaled down to at most ``max_width`` wide, aspect kept, both even
    (what FFmpeg's scalers take for 4:2:0 video); unchanged when already that narrow."""
    if max_width < 2:
        raise ValueError(f"max_width must be at least 2, got {max_width}")
    if width <= max_width:
        return width, height
    return max_width // 2 * 2, max(2, round(height * max_width / width / 2) * 2)
