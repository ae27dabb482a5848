"""Overlay videos: each object's mask blended in its own colour, outlined and numbered.

Frames are decoded in small batches, drawn, and piped as raw RGB into an ffmpeg process
that encodes H.264 (yuv420p, so it plays anywhere). The MP4 appears at its final path
only when complete.
"""

from __future__ import annotations

import bisect
import subprocess
import tempfile
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import ffmpeg
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from garvid.errors import VideoError
from garvid.files import atomic_path
from garvid.media.open import open_video
from garvid.media.source import FrameSource
from garvid.regions.masks import BBox, decode_rle, mask_bbox

if TYPE_CHECKING:
    from garvid.tracking.tracks import Tracks

#: RGB colour of object 1, 2, ... (then repeating): distinct, readable on real footage.
OBJECT_COLOURS: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),  # red
    (60, 180, 75),  # green
    (255, 225, 25),  # yellow
    (0, 130, 200),  # blue
    (245, 130, 48),  # orange
    (145, 30, 180),  # purple
    (70, 240, 240),  # cyan
    (240, 50, 230),  # magenta
)

ProgressCallback = Callable[[int, int], None]

# Frames decoded per batch while rendering.
_BATCH = 8


def object_colour(object_id: int) -> tuple[int, int, int]:
    """The overlay colour of object ``object_id`` (ids start at 1)."""
    if object_id < 1:
        raise ValueError(f"object ids start at 1, got {object_id}")
    return OBJECT_COLOURS[(object_id - 1) % len(OBJECT_COLOURS)]


def draw_overlay(frame: np.ndarray, masks: Mapping[int, np.ndarray], *, alpha: float = 0.5) -> np.ndarray:
    """A copy of ``frame`` (H, W, 3 uint8) with every non-empty mask blended, outlined and labelled."""
    height, width = frame.shape[:2]
    out = frame.copy()
    edge_width = max(1, round(min(height, width) / 360))  # 2 px at 720p: survives chroma subsampling
    labels: list[tuple[int, BBox]] = []
    for object_id in sorted(masks):
        mask = np.asarray(masks[object_id], dtype=bool)
        if mask.shape != (height, width):
            raise ValueError(f"mask of object {object_id} is {mask.shape[::-1]}, the frame is {width}x{height}")
        box = mask_bbox(mask)
        if box is None:
            continue
        colour = np.asarray(object_colour(object_id), dtype=np.float32)
        x1, y1, x2, y2 = box
        region, inside = out[y1 : y2 + 1, x1 : x2 + 1], mask[y1 : y2 + 1, x1 : x2 + 1]  # work in the box only
        region[inside] = (region[inside] * (1.0 - alpha) + colour * alpha + 0.5).astype(np.uint8)
        region[_edge(inside, edge_width)] = colour
        labels.append((object_id, box))
    font_size = max(10, round(height / 36))
    for object_id, (x1, y1, _, _) in labels:  # after all masks, so no label is painted over
        _paste(out, _label(object_id, font_size), x1, y1)
    return out


def render_overlay(
    video: FrameSource,
    frames: Sequence[int],
    masks_for: Callable[[int], Mapping[int, np.ndarray]],
    out_path: Path,
    *,
    fps: float | None = None,
    alpha: float = 0.5,
    progress: ProgressCallback | None = None,
) -> None:
    """Write ``frames`` of ``video`` with the masks of ``masks_for(frame)`` drawn on, as an MP4.

    ``fps`` defaults to the video's rate divided by the mean step between ``frames``, so
    the overlay plays at real speed. ``progress(done, total)`` is called after each frame.
    """
    frames = [int(f) for f in frames]
    if not frames:
        raise ValueError("no frames to render")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if fps is None:
        span = frames[-1] - frames[0]
        fps = video.info.fps * (len(frames) - 1) / span if span > 0 else video.info.fps
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    with atomic_path(Path(out_path)) as temp, tempfile.TemporaryFile() as log:
        try:
            encoder = subprocess.Popen(
                _encoder_args(temp, video.info.width, video.info.height, fps),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        except FileNotFoundError:
            raise VideoError("ffmpeg not found: install FFmpeg (e.g. apt-get install ffmpeg)") from None
        assert encoder.stdin is not None
        try:
            for done, (index, frame) in enumerate(video.iter_frames(frames, batch_size=_BATCH), start=1):
                encoder.stdin.write(draw_overlay(frame, masks_for(index), alpha=alpha).tobytes())
                if progress is not None:
                    progress(done, len(frames))
            encoder.stdin.close()
            encoder.wait()
        except BrokenPipeError:
            encoder.wait()  # ffmpeg quit early; its log says why
        finally:
            if encoder.poll() is None:  # we are failing: stop ffmpeg before the temp file goes
                encoder.kill()
                encoder.wait()
            if not encoder.stdin.closed:
                try:
                    encoder.stdin.close()
                except BrokenPipeError:
                    pass
        if encoder.returncode != 0:
            log.seek(0)
            lines = log.read().decode(errors="replace").strip().splitlines()
            reason = "; ".join(lines[-3:]) if lines else f"exit code {encoder.returncode}"
            raise VideoError(f"ffmpeg could not write {out_path}: {reason}")


def render_tracks(
    tracks: Tracks,
    out_path: Path,
    *,
    alpha: float = 0.5,
    progress: ProgressCallback | None = None,
    decoder: str = "auto",
    decode_device: str = "cpu",
) -> None:
    """Render every frame the tracks span, at the video's rate, with every visible object's mask
    (the video read by ``decoder`` on ``decode_device``, as in :func:`~garvid.media.open.open_video`).

    A frame between tracked frames shows the masks of the nearest tracked frame of its own
    shot (the earlier one on a tie); none when its neighbours lie across a cut. The span is the stride-long stretches around the tracked frames: for
    ``garvid track`` (tracked through the whole video), every frame of the video.
    """
    tracked = list(tracks.frames)
    if not tracked:
        raise ValueError("no tracked frames to render")
    reach = max(tracks.stride, 1) - 1
    frames = range(max(0, tracked[0] - reach), min(tracks.video.num_frames, tracked[-1] + reach + 1))

    @lru_cache(maxsize=2)  # frames come in order: consecutive frames share their nearest tracked frame
    def tracked_masks(position: int) -> dict[int, np.ndarray]:
        seen = {i: tracks.observations[i][position] for i in tracks.object_ids}
        return {i: decode_rle(observation.rle) for i, observation in seen.items() if observation.visible}

    shot_of = (lambda frame: 0) if tracks.shots is None else tracks.shots.index_of

    def masks_for(frame: int) -> dict[int, np.ndarray]:
        after = bisect.bisect_left(tracked, frame)
        around = [p for p in (after - 1, after) if 0 <= p < len(tracked) and shot_of(tracked[p]) == shot_of(frame)]
        if not around:
            return {}  # no tracked frame of this frame's shot is near: a mask would cross a cut
        return tracked_masks(min(around, key=lambda p: abs(tracked[p] - frame)))

    with open_video(tracks.video.path, fps=tracks.video.fps, decoder=decoder, decode_device=decode_device) as video:
        expected = (tracks.video.width, tracks.video.height, tracks.video.num_frames)
        if (video.info.width, video.info.height, video.info.num_frames) != expected:
            raise VideoError(
                f"{tracks.video.path} is not the video these tracks were made from: it is "
                f"{video.info.width}x{video.info.height} with {video.info.num_frames} frames, the tracks say "
                f"{expected[0]}x{expected[1]} with {expected[2]} frames"
            )
        render_overlay(video, frames, masks_for, out_path, fps=video.info.fps, alpha=alpha, progress=progress)


def _encoder_args(path: Path, width: int, height: int, fps: float) -> list[str]:
    """ffmpeg arguments: raw RGB on stdin -> H.264 yuv420p MP4 (padded to even size)."""
    rate = Fraction(fps).limit_denominator(1_001_000)  # 29.97002997... -> 30000/1001
    stream = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", framerate=str(rate))
    stream = stream.filter("pad", "ceil(iw/2)*2", "ceil(ih/2)*2")  # yuv420p needs even sides
    stream = stream.output(
        str(path.resolve()),  # absolute: a name starting with '-' is never taken for an option
        format="mp4",
        vcodec="libx264",
        pix_fmt="yuv420p",
        crf=18,
        preset="veryfast",
        movflags="+faststart",
    )
    return stream.global_args("-nostdin", "-loglevel", "error").overwrite_output().compile()


def _edge(mask: np.ndarray, width: int) -> np.ndarray:
    """The pixels of ``mask`` within ``width`` pixels of its outside (4-neighbour erosion).

    Beyond the array counts as outside, so a mask cropped to its box keeps its outline.
    """
    inner = mask.copy()
    for _ in range(width):
        shrunk = inner.copy()
        shrunk[[0, -1], :] = False
        shrunk[:, [0, -1]] = False
        shrunk[1:] &= inner[:-1]
        shrunk[:-1] &= inner[1:]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        inner = shrunk
    return mask & ~inner


@lru_cache(maxsize=64)
def _label(object_id: int, font_size: int) -> np.ndarray:
    """The tag "N" in object N's colour, as an RGB array."""
    text = str(object_id)
    colour = object_colour(object_id)
    font = ImageFont.load_default(size=font_size)
    left, top, right, bottom = font.getbbox(text)
    pad = max(1, font_size // 6)
    image = Image.new("RGB", (right - left + 2 * pad, bottom - top + 2 * pad), colour)
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    ImageDraw.Draw(image).text((pad - left, pad - top), text, fill=ink, font=font)
    label = np.asarray(image)
    label.flags.writeable = False
    return label


def _paste(frame: np.ndarray, label: np.ndarray, x: int, y: int) -> None:
    """Put ``label`` just above (x, y), or from y down when there is no room above; clipped to the frame."""
    height, width = frame.shape[:2]
    label = label[:height, :width]
    label_height, label_width = label.shape[:2]
    top = y - label_height if y >= label_height else y
    top = min(top, height - label_height)
    left = min(x, width - label_width)
    frame[top : top + label_height, left : left + label_width] = label
