"""Shots written out: text (one line per shot), JSON, and PySceneDetect's CSV scene list.

The CSV comes from PySceneDetect's own ``write_scene_list`` (the layout its ``list-scenes``
command writes, cut list row first), so editors and tools that read PySceneDetect's lists
read garvid's; its times are frame / fps, as PySceneDetect counts them, while the text and
JSON give each frame's own timestamp (the same for constant-rate video).
"""

from __future__ import annotations

import io
from typing import Any, Literal

from garvid.files import json_text
from garvid.media.source import VideoInfo
from garvid.shots.shots import Shots

ShotFormat = Literal["text", "json", "csv"]
SHOT_FORMATS: tuple[ShotFormat, ...] = ("text", "json", "csv")
#: The format an ``-o`` file's suffix asks for.
SUFFIX_FORMATS: dict[str, ShotFormat] = {".txt": "text", ".json": "json", ".csv": "csv"}


def shots_text(shots: Shots) -> str:
    """One line per shot: its number, start and end time, and its frames."""
    lines = [
        f"{number:>3}  {shot.start_time:9.3f}s - {shot.end_time:9.3f}s  frames {shot.start}-{shot.end - 1} ({shot.num_frames})"
        for number, shot in enumerate(shots, start=1)
    ]
    return "\n".join(lines) + "\n"


def shots_json(shots: Shots, info: VideoInfo, source: str) -> dict[str, Any]:
    """The JSON garvid writes: the video (path, rate, frames, duration), where the shots came
    from (``detected``, ``off`` or the shot-list file), the cut frames and the shots."""
    video = info.to_json()
    return {
        "video": {key: video[key] for key in ("path", "fps", "num_frames", "duration")},
        "source": source,
        "cuts": shots.cuts,
        "shots": shots.to_json(),
    }


def shots_csv(shots: Shots, fps: float) -> str:
    """PySceneDetect's CSV scene list: a ``Timecode List:`` row of the cuts, a header row,
    then one row per scene (1-based frames, the end frame inclusive)."""
    from scenedetect import FrameTimecode
    from scenedetect.output import write_scene_list

    rate = float(fps)
    scenes = [(FrameTimecode(shot.start, fps=rate), FrameTimecode(shot.end, fps=rate)) for shot in shots]
    buffer = io.StringIO(newline="")
    write_scene_list(buffer, scenes, include_cut_list=True, cut_list=[start for start, _ in scenes[1:]])
    return buffer.getvalue()


def render_shots(shots: Shots, info: VideoInfo, source: str, output_format: ShotFormat) -> str:
    """``shots`` as the text of ``output_format``."""
    if output_format == "json":
        return json_text(shots_json(shots, info, source))
    if output_format == "csv":
        return shots_csv(shots, info.fps)
    return shots_text(shots)
