"""Cut detection: PySceneDetect's AdaptiveDetector fed garvid's own small frames.

PySceneDetect can open a video itself, but feeding it frames from a
:class:`~garvid.media.source.FrameSource` means frame folders work too, frames are read once
at a small size (:data:`DETECTION_WIDTH`) in one forward pass (:meth:`FrameSource.scan`),
and the detector keeps only the last frames' HSV planes and a few scores, so a long video
costs time, not memory (benchmarks/results/MEASUREMENTS.md#shot-detection). Why
AdaptiveDetector and these settings: docs/commands.md#the-detector-and-why.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from garvid.media.source import FrameSource
from garvid.options import ShotOptions
from garvid.shots.shots import Shots

#: Width frames are read at for detection: PySceneDetect's own target when it downscales
#: a video it opens itself (``scene_manager.DEFAULT_MIN_WIDTH``).
DETECTION_WIDTH = 256
#: AdaptiveDetector's other settings, PySceneDetect's defaults: the least content change a
#: cut needs (so a still shot's noise never makes one) and the frames on each side a
#: frame's change is compared with.
MIN_CONTENT = 15.0
WINDOW = 2

ProgressCallback = Callable[[int, int], None]
"""``progress(done, total)``: frames read so far, out of all."""


def detection_settings(options: ShotOptions) -> dict[str, object]:
    """Everything that decides the cuts besides the frames (the shot cache keys on it)."""
    from importlib.metadata import version

    return {
        "detector": "adaptive",
        "scenedetect": version("scenedetect"),
        "width": DETECTION_WIDTH,
        "adaptive_threshold": options.cut_threshold,
        "min_content": MIN_CONTENT,
        "window": WINDOW,
        "min_shot": options.min_shot,
    }


def detect_cuts(video: FrameSource, options: ShotOptions, progress: ProgressCallback | None = None) -> list[int]:
    """The frames of ``video`` where a new shot starts, reading every frame once in order.

    Open ``video`` small (``open_video(..., max_width=DETECTION_WIDTH)``): the detector
    compares colour and brightness, which small frames keep.
    """
    import cv2  # OpenCV (PySceneDetect's own dependency): only when detecting
    from scenedetect import AdaptiveDetector, FrameTimecode

    detector = AdaptiveDetector(
        adaptive_threshold=options.cut_threshold,
        min_scene_len=float(options.min_shot),  # a float is seconds
        window_width=WINDOW,
        min_content_val=MIN_CONTENT,
    )
    fps = float(video.info.fps)
    total = video.info.num_frames
    # The detector reads BGR. One buffer for every frame: a new array per frame made glibc's
    # heap grow with the video's length (benchmarks/results/MEASUREMENTS.md#shot-detection).
    bgr = np.empty((video.info.height, video.info.width, 3), dtype=np.uint8)
    cuts: list[int] = []
    for index, frame in enumerate(video.scan()):
        cv2.cvtColor(frame, cv2.COLOR_RGB2BGR, dst=bgr)
        cuts.extend(timecode.frame_num for timecode in detector.process_frame(FrameTimecode(index, fps=fps), bgr))
        if progress is not None and (index % 256 == 255 or index == total - 1):
            progress(index + 1, total)
    cuts.extend(timecode.frame_num for timecode in detector.post_process(FrameTimecode(total - 1, fps=fps)))
    return cuts


def detect_shots(video: FrameSource, options: ShotOptions, progress: ProgressCallback | None = None) -> Shots:
    """The shots of ``video``, cut where :func:`detect_cuts` finds cuts."""
    return Shots.from_cuts(detect_cuts(video, options, progress), video.timestamps(), video.info.duration)
