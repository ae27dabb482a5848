"""What ffprobe says about a video file, asked before any decoder opens it.

Both video readers (decord's and torchcodec's) start here, so a missing, empty,
truncated, non-video or still-image file becomes the same one-line
:class:`~garvid.errors.VideoError` naming the file whichever decoder was chosen, and both
read the display rotation and frame rate the same way.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg
import numpy as np

from garvid.errors import VideoError
from garvid.media.source import VideoInfo

# ffprobe format names of single images (png_pipe, jpeg_pipe, image2, ...).
_IMAGE_FORMAT = re.compile(r"(^|,)(image2|image2pipe|[a-z0-9]+_pipe)(,|$)")


def probe_video(path: Path, name: str, *, packets: bool = False) -> dict[str, Any]:
    """ffprobe's answer for ``path`` after cheap checks that rule out non-videos.

    Returns ``{"stream": <the first video stream>, "packets": [...]}``; with ``packets``,
    the list holds that stream's packets (``pts``, ``duration``, ``flags``) in file order,
    read by the same ffprobe run (it demuxes the whole file but decodes nothing).
    """
    if not path.exists():
        raise VideoError(f"{name}: no such file")
    if not path.is_file():
        raise VideoError(f"{name}: not a regular file")
    if path.stat().st_size == 0:
        raise VideoError(f"{name}: the file is empty (0 bytes)")
    # 'V': video streams that are not attached pictures (cover art), as the filter below
    extra = {"select_streams": "V:0", "show_entries": "packet=pts,duration,flags"} if packets else {}
    try:
        # an absolute path, so a name starting with '-' is never taken for an option
        probe = ffmpeg.probe(str(path.resolve()), v="error", **extra)
    except FileNotFoundError:
        raise VideoError("ffprobe not found: install FFmpeg (e.g. apt-get install ffmpeg)") from None
    except ffmpeg.Error as error:
        lines = error.stderr.decode(errors="replace").strip().splitlines()
        reason = lines[-1].replace(str(path.resolve()) + ": ", "") if lines else "unknown error"
        raise VideoError(f"{name}: not a readable video ({reason})") from None
    streams = [
        s
        for s in probe.get("streams", [])
        if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
    ]
    if not streams:
        raise VideoError(f"{name}: the file has no video stream")
    if _IMAGE_FORMAT.search(probe.get("format", {}).get("format_name", "")):
        raise VideoError(f"{name}: this is a still image, not a video")
    return {"stream": streams[0], "packets": probe.get("packets", [])}


def rotation(stream: dict[str, Any]) -> int:
    """Clockwise display rotation, read the way decord reads it (tag first, then matrix)."""
    tag = stream.get("tags", {}).get("rotate")
    matrix = [d for d in stream.get("side_data_list", []) if "rotation" in d]
    if tag not in (None, "", "0"):
        degrees = float(tag)
    elif matrix:
        degrees = -float(matrix[0]["rotation"])  # ffprobe reports the matrix counter-clockwise
    else:
        return 0
    degrees = math.fmod(degrees, 360.0)
    whole = int(degrees + 360.0 if degrees < 0 else degrees)
    return whole if whole in (90, 180, 270) else 0  # decord ignores other angles


def display_size(stream: dict[str, Any]) -> tuple[int, int]:
    """Width and height of the frames as shown: the stored size turned by the rotation."""
    width, height = int(stream["width"]), int(stream["height"])
    return (height, width) if rotation(stream) in (90, 270) else (width, height)


def frame_rate(stream: dict[str, Any], num_frames: int, name: str) -> float:
    """The stream's average frame rate (else its nominal rate, else frames over duration)."""
    for key in ("avg_frame_rate", "r_frame_rate"):
        try:
            rate = Fraction(stream.get(key, "0/0"))
        except (ValueError, ZeroDivisionError):
            continue
        if rate > 0:
            return float(rate)
    duration = float(stream.get("duration") or 0)
    if duration > 0:
        return num_frames / duration
    raise VideoError(f"{name}: the file does not say its frame rate")


def bits_per_sample(stream: dict[str, Any]) -> int:
    """Bits per colour sample of the stored frames (8 for yuv420p, 10 for yuv420p10le, ...)."""
    raw = stream.get("bits_per_raw_sample")
    if raw not in (None, "", "N/A"):
        return int(raw)
    found = re.search(r"p(\d+)(le|be)$", stream.get("pix_fmt", ""))
    return int(found.group(1)) if found else 8


def round_times(seconds: np.ndarray) -> np.ndarray:
    """Frame times as garvid states them: decord's float32 seconds, rounded to microseconds.

    decord keeps float32 seconds and the rounding takes away its noise (0.0999999 -> 0.1);
    the torchcodec reader passes its exact times through the same float32 so both readers
    give the same times to the microsecond (float32 keeps ~60 us at 10 minutes).
    """
    return np.round(np.asarray(seconds, dtype=np.float32).astype(np.float64), 6)


def file_info(name: str, stream: dict[str, Any], times: np.ndarray, decoder: str) -> VideoInfo:
    """What a video file is, from ffprobe's stream and the frame times its decoder found."""
    fps = frame_rate(stream, len(times), name)
    width, height = display_size(stream)
    return VideoInfo(
        path=name,
        num_frames=len(times),
        fps=fps,
        width=width,
        height=height,
        duration=round(float(times[-1]) + 1.0 / fps, 6),
        rotation=rotation(stream),
        decoder=decoder,
    )


def convert_hint(name: str) -> str:
    """What to try when a file probes fine but will not decode."""
    return (
        f"If it plays elsewhere, remux it (ffmpeg -i {name} -c copy fixed.mp4) "
        f"or re-encode it (ffmpeg -i {name} -pix_fmt yuv420p fixed.mp4)"
    )
