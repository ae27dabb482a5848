"""Open any video input garvid reads: a video file or a folder of frames."""

from __future__ import annotations

from pathlib import Path

from garvid.media.frame_folder import FrameFolder
from garvid.media.source import FrameSource
from garvid.media.video_file import Video


def open_video(
    path: str | Path, *, fps: float | None = None, num_threads: int = 0, max_width: int | None = None
) -> FrameSource:
    """Open a video file, or a folder of frames at ``fps`` (default 30); VideoError if neither.

    ``fps`` applies to frame folders only: a video file states its own frame rate.
    ``max_width`` gives frames scaled down to at most that wide (aspect kept), for a quick pass.
    """
    if Path(path).is_dir():
        return FrameFolder(path, fps=fps, max_width=max_width)
    return Video(path, num_threads=num_threads, max_width=max_width)
