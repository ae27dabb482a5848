"""Open any video input garvid reads: a video file (decord or torchcodec) or a folder of frames."""

from __future__ import annotations

import importlib
from pathlib import Path

from garvid.errors import VideoError, first_line
from garvid.media.frame_folder import FrameFolder
from garvid.media.source import FrameSource
from garvid.options import TrackingOptions, check_decoder


def open_video(
    path: str | Path,
    *,
    fps: float | None = None,
    decoder: str = "auto",
    decode_device: str = "cpu",
    num_threads: int = 0,
    max_width: int | None = None,
) -> FrameSource:
    """Open a video file, or a folder of frames at ``fps`` (default 30); VideoError if neither.

    ``fps`` applies to frame folders only: a video file states its own frame rate.
    ``decoder`` and ``decode_device`` (``cpu``, or CUDA for torchcodec) apply to video files only.
    ``max_width`` gives frames scaled down to at most that wide (aspect kept), for a quick pass.
    """
    check_decoder(decoder, decode_device)
    if Path(path).is_dir():
        return FrameFolder(path, fps=fps, max_width=max_width)
    chosen = resolve_decoder(decoder, decode_device)
    if chosen == "decord":
        from garvid.media.video_file import Video

        return Video(path, num_threads=num_threads, max_width=max_width)
    from garvid.media.torchcodec_file import TorchcodecVideo

    return TorchcodecVideo(path, device=decode_device, num_threads=num_threads, max_width=max_width)


def open_video_with(path: str | Path, tracking: TrackingOptions) -> FrameSource:
    """Open ``path`` as ``tracking`` says inputs are read: its decoder and decode device, a frame folder's rate."""
    return open_video(path, fps=tracking.fps, decoder=tracking.decoder, decode_device=tracking.decode_device)


def resolve_decoder(decoder: str, decode_device: str = "cpu") -> str:
    """The decoder ``decoder`` names on this machine: ``auto`` is decord where it can be imported
    (torchcodec when decoding on a GPU, which decord cannot), else torchcodec.

    VideoError when the decoder asked for (or, for ``auto``, neither) can be imported.
    """
    check_decoder(decoder, decode_device)
    if decoder == "auto":
        wanted = ("torchcodec",) if decode_device != "cpu" else ("decord", "torchcodec")
    else:
        wanted = (decoder,)
    problems = []
    for name in wanted:
        problem = _import_problem(name)
        if problem is None:
            return name
        problems.append(f"{name} cannot be imported ({problem})")
    hint = "pip install torchcodec" if decoder != "decord" else "use --decoder torchcodec, or pip install decord"
    raise VideoError(f"no video decoder: {'; '.join(problems)}: {hint}")


def _import_problem(module: str) -> str | None:
    """Why ``module`` cannot be imported (its first line), or None when it can."""
    try:
        importlib.import_module(module)
    except (ImportError, OSError, RuntimeError) as error:  # torchcodec raises RuntimeError when FFmpeg's libraries are missing
        return first_line(error)
    return None
