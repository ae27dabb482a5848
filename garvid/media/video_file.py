"""Lazy, random-access video reading on top of decord.

Only the frames asked for are converted to RGB, and only a bounded batch of them is held
at a time: decord seeks to the keyframe before a requested frame and decodes forward
from there, so requests are served in ascending order (one forward pass per call) and
the result is put back in the caller's order. (Containers without per-frame timestamps
cannot be seeked reliably; those are decoded straight through instead.)

Opening a file first asks ffprobe about it: a missing, empty, truncated, non-video or
still-image file becomes a one-line :class:`~garvid.errors.VideoError` naming the file,
instead of a C++ error (or worse) from decord. Frames come out in display orientation:
decord applies the container's rotation (display matrix or ``rotate`` tag), and
``VideoInfo.width``/``height`` are the rotated size.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import decord
import numpy as np

from garvid.errors import VideoError, first_line
from garvid.media import source
from garvid.media.probe import convert_hint, display_size, file_info, frame_rate, probe_video, round_times
from garvid.media.source import FrameSource, scaled_size

# decord's bundled FFmpeg libraries log demuxer/decoder complaints straight to stderr;
# every failure that matters reaches us as an exception instead. The level is private to
# decord's own copy of libavutil, so other FFmpeg users in the process are unaffected.
decord.logging.set_level(decord.logging.QUIET)

#: Frame widths decord 0.6.0 cannot return: its row stride check mistakes the padded
#: RGB rows (stride = 3 * width rounded up to 32 pixels) for 4+ channel pixels.
_DECORD_BAD_WIDTHS = frozenset({1, 2, 3, 4, 6, 8, 12, 16, 24, 48, 72})

# What decord raises: its C++ errors, and too many undecodable frames (see fault_tol).
_DECORD_ERRORS = (decord.DECORDError, decord.DECORDLimitReachedError)

# Parts of decord's C++ error messages that mean nothing to a user: "[12:34:56]
# /src/file.cc:123: " prefixes (nested when rethrown), a "[file name]" tag, the failed
# check's C++ expression and advice on DECORD_* environment variables.
_DECORD_NOISE = re.compile(
    r"^(\[[\d:]+\] \S+:\d+: )+(\[[^\]]*\] ?)?|Check failed: .*?\(-?\d+ vs\. -?\d+\) |\s*(and )?`DECORD_.*$"
)


class Video(FrameSource):
    """Lazy decord-backed reader. Context manager. Never holds the whole video.

    Ask for frames in ascending order where you can: decord can only decode forward from
    a keyframe, so every step backwards restarts at the keyframe before it (and real
    footage often has one keyframe every few hundred frames).

    ``num_threads`` is the number of FFmpeg decoding threads; 0 (the default) means one.
    With more, decord 0.6.0's memory grows with every frame read (up to 0.3 MB per 720p
    frame in our runs, not given back on close), for a decoding speed-up of under 10% on
    two cores.

    ``max_width`` asks for small frames (a quick pass over the whole video, such as shot
    detection): decord's own scaler returns them at most that wide, aspect kept, and
    ``info`` gives that size.
    """

    def __init__(self, path: str | Path, *, num_threads: int = 0, max_width: int | None = None):
        if num_threads < 0:
            raise ValueError(f"num_threads must be 0 (default) or positive, got {num_threads}")
        self._path = Path(path)
        self._name = str(path)
        self._num_threads = num_threads or 1
        stream = probe_video(self._path, self._name)["stream"]
        width, height = display_size(stream)
        if width in _DECORD_BAD_WIDTHS:
            raise VideoError(
                f"{self._name}: decord 0.6.0 cannot decode frames {width} pixels wide (a known decord bug); "
                f"re-encode it wider, e.g. ffmpeg -i {self._name} -vf scale=128:-2 wider.mp4"
            )
        self._display_size = width, height
        self._decode_size = None if max_width is None else scaled_size(width, height, max_width)
        self._reader: decord.VideoReader | None = self._open_reader()
        num_frames = len(self._reader)
        fps = frame_rate(stream, num_frames, self._name)
        self._times, self._seekable = self._frame_times(num_frames, fps)
        self._position = 0  # next frame decord will return (tracked in sequential mode only)
        self.info = file_info(self._name, stream, self._times, "decord")
        if self._decode_size is not None:
            self.info = replace(self.info, width=self._decode_size[0], height=self._decode_size[1])

    def close(self) -> None:
        """Free decord's decoder; the Video cannot decode any more."""
        self._reader = None

    def _decode_ascending(self, indices: np.ndarray) -> np.ndarray:
        """Frames at strictly ascending ``indices``."""
        if self._reader is None:
            raise ValueError(f"{self._name}: the video is closed")
        if self._seekable:
            return self._get_batch(indices)
        # Without usable timestamps decord's keyframe seeks land on the wrong frames, so
        # decode straight through from the current position (reopening to go back).
        if indices[0] < self._position:
            self._reader = self._open_reader()
            self._position = 0
        out = np.empty((indices.size, self.info.height, self.info.width, 3), dtype=np.uint8)
        for start in range(self._position, int(indices[-1]) + 1, source.DECODE_BATCH):
            span = np.arange(start, min(start + source.DECODE_BATCH, int(indices[-1]) + 1))
            batch = self._get_batch(span)
            keep = np.isin(span, indices)
            out[np.searchsorted(indices, span[keep])] = batch[keep]
            self._position = int(span[-1]) + 1
        return out

    def scan(self) -> Iterator[np.ndarray]:
        """Every frame once, in order, decoded by OpenCV's FFmpeg reader (PySceneDetect's own
        reader and dependency) and scaled to ``info``'s size.

        Not decord: its reader hands the next packet to its decoding thread whenever that
        thread has not yet returned a frame, instead of waiting (``VideoReader::NextFrameImpl``,
        decord 0.6.0), and the frames of those packets queue until read. Each stall of the
        thread on a busy CPU adds to the queue and nothing but a seek or the end of the file
        empties it, so a forward pass held more frames the longer the video
        (benchmarks/results/MEASUREMENTS.md#shot-detection); restarting it at every keyframe
        did not bound that. OpenCV decodes when asked.
        """
        import cv2  # PySceneDetect's dependency: loaded only for a forward pass

        width, height = self.info.width, self.info.height
        capture = cv2.VideoCapture(str(self._path.resolve()), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, self._num_threads])
        if not capture.isOpened():
            raise VideoError(f"{self._name}: OpenCV cannot read this video. {convert_hint(self._name)}")
        small = np.empty((height, width, 3), dtype=np.uint8)
        rgb = np.empty_like(small)
        count = 0
        try:
            ok, decoded = capture.read()
            while ok and count <= self.info.num_frames:
                if decoded.shape[1::-1] != self._display_size:  # OpenCV turns frames for display, as decord does
                    raise VideoError(
                        f"{self._name}: OpenCV read {decoded.shape[1]}x{decoded.shape[0]} frames, expected "
                        f"{self._display_size[0]}x{self._display_size[1]}"
                    )
                frame = decoded if self._decode_size is None else cv2.resize(decoded, (width, height), dst=small, interpolation=cv2.INTER_AREA)
                count += 1
                if count <= self.info.num_frames:
                    yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB, dst=rgb)
                ok, decoded = capture.read(decoded)  # into the same buffer
        finally:
            capture.release()
        if count != self.info.num_frames:
            raise VideoError(
                f"{self._name}: OpenCV reads {'more than ' if count > self.info.num_frames else ''}{count} frames where "
                f"decord finds {self.info.num_frames}. {convert_hint(self._name)}"
            )

    def drop_read_ahead(self) -> None:
        """Free the frames decord decoded past the last read (dmlc/decord#157).

        After a seek decord keeps decoding ahead in the background while its caller is
        busy, and holds those frames: a slow consumer such as SAM2 on a CPU would end up
        with much of the video in RAM. Parking the reader on frame 0 frees that queue;
        the next read seeks to its keyframe as usual. Readers that cannot seek (see
        ``_frame_times``) keep their place instead.
        """
        if self._seekable and self._reader is not None:
            self._reader.seek(0)

    def _get_batch(self, indices: np.ndarray) -> np.ndarray:
        assert self._reader is not None
        try:
            batch = self._reader.get_batch(indices.tolist())
        except _DECORD_ERRORS as error:
            raise VideoError(
                f"{self._name}: cannot decode frames {int(indices[0])}..{int(indices[-1])} "
                f"({_decord_reason(error)}); it may be truncated or damaged. {convert_hint(self._name)}"
            ) from None
        # A decord bridge (e.g. torch) set elsewhere in the process changes the type.
        frames = batch.asnumpy() if hasattr(batch, "asnumpy") else batch.numpy()
        if frames.shape[1:] != (self.info.height, self.info.width, 3):
            raise VideoError(
                f"{self._name}: decoder returned {frames.shape[2]}x{frames.shape[1]} frames, "
                f"expected {self.info.width}x{self.info.height}"
            )
        return frames

    def _open_reader(self) -> decord.VideoReader:
        try:
            # fault_tol: fail rather than silently repeat frames when >5% cannot be decoded
            # an absolute path, so a name like "http:x.mp4" is never taken for a protocol
            path = str(self._path.resolve())
            width, height = self._decode_size or (-1, -1)  # -1: decord's full size
            return decord.VideoReader(path, num_threads=self._num_threads, fault_tol="0.05", width=width, height=height)
        except (*_DECORD_ERRORS, RuntimeError, AssertionError) as error:
            raise VideoError(
                f"{self._name}: decord cannot read this video ({_decord_reason(error)}); it may be truncated "
                f"or damaged. {convert_hint(self._name)}"
            ) from None

    def _frame_times(self, num_frames: int, fps: float) -> tuple[np.ndarray, bool]:
        """Start time of each frame and whether decord may seek (both need sane timestamps)."""
        assert self._reader is not None
        starts = round_times(self._reader.get_frame_timestamp(np.arange(num_frames))[:, 0])
        # Containers without per-frame timestamps (e.g. AVI with B-frames) give garbage here.
        usable = bool(np.isfinite(starts).all() and starts[0] >= -1e-3 and (np.diff(starts) > 0).all())
        if not usable:
            return np.arange(num_frames, dtype=np.float64) / fps, False
        return starts, True


def _decord_reason(error: BaseException) -> str:
    """The gist of a decord error: no timestamp, source location, file name or env-var advice."""
    return _DECORD_NOISE.sub("", first_line(error)).strip()
