"""A folder of frames read like a video: DAVIS, MeViS and VideoRefer ship clips this way.

Frames are the folder's JPEG and PNG files in the order of the (last) integer in their
names (``00000.jpg``, ``frame_12.png``); the frame rate is not stored anywhere, so it is
given (``--fps``, 30 by default). Frames are read from disk only when asked for, a batch
at a time, like :class:`garvid.video.Video` decodes them.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from garvid.errors import GarvidWarning, VideoError
from garvid.media.source import FrameSource, VideoInfo, scaled_size

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
DEFAULT_FPS = 30.0
_NUMBER = re.compile(r"\d+")


def frame_files(folder: Path) -> list[Path]:
    """The frame files of ``folder`` in frame order; VideoError when there are none or two share a number."""
    return list(numbered_frames(folder).values())


def numbered_frames(folder: Path) -> dict[int, Path]:
    """Frame number -> file, in frame order (see :func:`frame_files`)."""
    numbered: dict[int, Path] = {}
    for path in folder.iterdir():
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        numbers = _NUMBER.findall(path.stem)
        if not numbers:
            raise VideoError(f"{folder}: frame file {path.name} has no number in its name to order it by")
        number = int(numbers[-1])
        if number in numbered:
            raise VideoError(f"{folder}: frames {numbered[number].name} and {path.name} both have number {number}")
        numbered[number] = path
    if not numbered:
        raise VideoError(f"{folder}: no JPEG or PNG frames in this folder")
    return {n: numbered[n] for n in sorted(numbered)}


def numbering_gaps(numbers: list[int]) -> str | None:
    """How ascending frame numbers skip ("3 of 0..9 missing: 1, 4, 5"), or None when they do not."""
    first, last = numbers[0], numbers[-1]
    missing = last - first + 1 - len(numbers)
    if not missing:
        return None
    present = set(numbers)
    examples = [n for n in range(first, last + 1) if n not in present][:3]
    shown = ", ".join(map(str, examples)) + (", ..." if missing > len(examples) else "")
    return f"{missing} of {first}..{last} missing: {shown}"


def folder_digest(folder: Path) -> str:
    """SHA-256 over the frame files' names and bytes, in frame order (the tracking cache key)."""
    digest = hashlib.sha256()
    for path in frame_files(folder):
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


class FrameFolder(FrameSource):
    """Random access to the frames of a folder; holds no frame between calls.

    ``max_width`` asks for small frames: each frame wider than that is scaled down (PIL,
    box filter, aspect kept), and ``info`` gives that size.
    """

    def __init__(self, path: str | Path, *, fps: float | None = None, max_width: int | None = None):
        self._path = Path(path)
        self._name = str(path)
        if fps is not None and not fps > 0:
            raise VideoError(f"{self._name}: the frame rate must be positive, got {fps}")
        numbered = numbered_frames(self._path)
        self._files = list(numbered.values())
        self._stored_size = width, height = self._read(0).shape[1::-1]
        if max_width is not None:
            width, height = scaled_size(width, height, max_width)
        rate = float(fps or DEFAULT_FPS)
        gaps = numbering_gaps(list(numbered))
        if gaps:
            warnings.warn(
                f"{self._name}: the frame numbers have gaps ({gaps}); the {len(self._files)} files are read as "
                f"consecutive frames at {rate:g} fps, so times and durations count files, not frame numbers",
                GarvidWarning,
                stacklevel=2,
            )
        self._times = np.arange(len(self._files), dtype=np.float64) / rate
        self.info = VideoInfo(
            path=self._name,
            num_frames=len(self._files),
            fps=rate,
            width=width,
            height=height,
            duration=round(len(self._files) / rate, 6),
            rotation=0,
            decoder="pillow",
        )

    def _read(self, index: int) -> np.ndarray:
        path = self._files[index]
        try:
            with Image.open(path) as image:
                return np.asarray(image.convert("RGB"))
        except (UnidentifiedImageError, OSError) as error:
            raise VideoError(f"{self._name}: cannot read frame {path.name} ({error})") from None

    def _decode_ascending(self, indices: np.ndarray) -> np.ndarray:
        out = np.empty((indices.size, self.info.height, self.info.width, 3), dtype=np.uint8)
        for position, index in enumerate(indices.tolist()):
            frame = self._read(index)
            if frame.shape[1::-1] != self._stored_size:
                raise VideoError(
                    f"{self._name}: frame {self._files[index].name} is {frame.shape[1]}x{frame.shape[0]}, "
                    f"the first frame is {self._stored_size[0]}x{self._stored_size[1]}"
                )
            if frame.shape != out.shape[1:]:
                frame = np.asarray(Image.fromarray(frame).resize((self.info.width, self.info.height), Image.Resampling.BOX))
            out[position] = frame
        return out
