"""A video's shots for a request: detected (and cached by the video's content, like tracks),
off (one shot), or read from the user's shot list.

Cut detection reads every frame of the video, so its result is cached: one small JSON entry
per video content and detection settings, under ``<cache>/shots-v<format>/`` beside the
tracking cache's folders, keyed by the tracking cache's own :func:`content_digest` (a file's
bytes, a frame folder's frames). An entry holds the cut frames only; the shots' times come
from the video when it is opened. Entries are written atomically and checked on reading; one
that is unusable is reported and detected again (the entry is then replaced, never deleted
otherwise). A cache that cannot be written is reported and otherwise ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from garvid.files import write_json
from garvid.media.open import open_video
from garvid.media.source import VideoInfo
from garvid.options import ShotOptions, TrackingOptions
from garvid.paths import cache_root
from garvid.shots.detect import DETECTION_WIDTH, ProgressCallback, detect_cuts, detection_settings
from garvid.shots.reading import read_shots_file
from garvid.shots.shots import Shots
from garvid.tracking.cache import content_digest, json_digest

#: Bumped whenever an entry's layout or the meaning of its key changes.
SHOT_CACHE_FORMAT = 1


@dataclass(frozen=True)
class ShotCacheKey:
    """What decides a video's cuts: its content and the detection settings."""

    video: str  # content_digest of the video
    detection: dict[str, Any]  # detection_settings

    def to_json(self) -> dict[str, Any]:
        return {"video": self.video, "detection": self.detection}

    def digest(self) -> str:
        return json_digest({"format": SHOT_CACHE_FORMAT, **self.to_json()})


class ShotCache:
    """One video's cuts per file, under ``root/shots-v<format>/<key digest>.json``."""

    def __init__(self, root: Path, on_problem: Callable[[str], None] | None = None):
        self.root = Path(root)
        self.on_problem = on_problem or (lambda message: None)

    @property
    def folder(self) -> Path:
        return self.root / f"shots-v{SHOT_CACHE_FORMAT}"

    def path(self, key: ShotCacheKey) -> Path:
        return self.folder / f"{key.digest()}.json"

    def load(self, key: ShotCacheKey, num_frames: int) -> list[int] | None:
        """The cached cuts of ``key`` (a video of ``num_frames`` frames); None when absent or unusable."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(entry, dict) or entry.get("format") != SHOT_CACHE_FORMAT or entry.get("key") != key.to_json():
                raise ValueError("it was stored for another key or format")
            cuts = entry.get("cuts")
            if entry.get("num_frames") != num_frames or not isinstance(cuts, list):
                raise ValueError("it does not match the video")
            if not all(type(cut) is int and 0 < cut < num_frames for cut in cuts) or cuts != sorted(set(cuts)):
                raise ValueError("its cuts are not ascending frames of the video")
        except (OSError, ValueError, RecursionError) as error:
            self.on_problem(f"shot cache entry {path.name} is unusable ({error}); detecting the cuts again")
            return None
        return cuts

    def store(self, key: ShotCacheKey, num_frames: int, cuts: list[int]) -> Path | None:
        """Save ``cuts`` for ``key`` (replacing the entry); None, reported, when the cache cannot be written."""
        path = self.path(key)
        entry = {"format": SHOT_CACHE_FORMAT, "key": key.to_json(), "num_frames": num_frames, "cuts": cuts}
        try:
            write_json(entry, path)  # atomically
        except OSError as error:
            self.on_problem(f"cannot write the shot cache in {self.root} ({error.strerror or error}); continuing without it")
            return None
        return path


def shots_for(
    video: Path,
    options: ShotOptions,
    *,
    fps: float | None = None,
    decoder: str = "auto",
    cache: ShotCache | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[VideoInfo, Shots]:
    """The shots of ``video`` (a file read by ``decoder``, or a frame folder at ``fps``) as
    ``options`` ask: detected (through ``cache`` when given), one shot (``off``), or the
    shot-list file's.

    Also the video's info as read for detection (its width and height are the small size).
    """
    with open_video(video, fps=fps, decoder=decoder, max_width=DETECTION_WIDTH) as source:
        times, info = source.timestamps(), source.info
        if options.file is not None:
            return info, read_shots_file(options.file, times, info.duration)
        if options.shots == "off":
            return info, Shots.from_cuts([], times, info.duration)
        if cache is None:
            return info, Shots.from_cuts(detect_cuts(source, options, progress), times, info.duration)
        key = ShotCacheKey(content_digest(Path(video)), detection_settings(options))
        cuts = cache.load(key, info.num_frames)
        if cuts is None:
            cuts = sorted(set(detect_cuts(source, options, progress)))
            cache.store(key, info.num_frames, cuts)
        return info, Shots.from_cuts(cuts, times, info.duration)


def request_shots(
    video: Path,
    tracking: TrackingOptions,
    *,
    on_problem: Callable[[str], None] | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[VideoInfo, Shots]:
    """:func:`shots_for` with the shot settings, decoder, frame rate and cache that ``tracking``
    names (the shot cache sits in the tracking cache's folder; ``--no-cache`` skips both).
    Frames for cut detection are always decoded on the CPU: they are small."""
    cache = ShotCache(tracking.cache_dir or cache_root(), on_problem) if tracking.use_cache else None
    return shots_for(video, tracking.shot_options, fps=tracking.fps, decoder=tracking.decoder, cache=cache, progress=progress)
