"""A cache of tracking results, so another question about the same clip skips tracking.

An entry is keyed by what decides the tracks: the video's content, the region prompts'
content (mask file bytes, boxes, points, prompt frame; for --object the detector,
phrases and threshold), the tracker, and the exact frames
tracked (which encode stride and span). Entries are JSON (never pickles), written
atomically, and checked on reading: a corrupt, foreign or inconsistent entry is
reported, deleted and tracked again, never trusted. A cache that cannot be written is
reported and otherwise ignored: it never breaks a run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from garvid.detection.checkpoints import detection_key
from garvid.errors import GarvidError
from garvid.files import atomic_path
from garvid.paths import cache_root
from garvid.regions.input import RegionInput
from garvid.tracking.tracks import Tracks

#: Bumped whenever the entry layout or the meaning of a key changes.
CACHE_FORMAT = 1


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (hex), read in chunks; GarvidError naming the file if unreadable."""
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as error:
        raise GarvidError(f"cannot read {path}: {error.strerror or error}") from None


def content_digest(path: Path) -> str:
    """Digest of a video's content: its bytes, or a frame folder's frames (names and bytes)."""
    if Path(path).is_dir():
        from garvid.media.frame_folder import folder_digest

        return folder_digest(Path(path))
    return file_digest(path)


def _json_digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def regions_digest(regions: RegionInput, object_ids: Sequence[int]) -> str:
    """Digest of the region prompts and of ``object_ids``, the objects actually tracked.

    Only the objects a question asks about are tracked, so they are part of the key. Mask
    files count by content: renaming one keeps the digest, editing it changes it.
    """
    key = {
        "objects": sorted(object_ids),
        "masks": [file_digest(Path(p)) for p in regions.masks],
        "boxes": list(regions.boxes),
        "points": list(regions.points),
        "frame": regions.frame,
        "resize_masks": regions.resize_masks,
    }
    if regions.objects:  # what decides the detections: detector, phrases and threshold
        key["detect"] = detection_key(regions)
    return _json_digest(key)


@dataclass(frozen=True)
class TrackCacheKey:
    """Everything that decides the tracks of one request."""

    video: str  # file_digest of the video
    regions: str  # regions_digest of the prompts and the tracked objects
    tracker: str  # preset name, or a checkpoint path as the user gave it
    frames: tuple[int, ...]  # the tracked frame indices (so stride and span are in the key)
    prompt_frame: int

    def to_json(self) -> dict[str, Any]:
        return {
            "video": self.video,
            "regions": self.regions,
            "tracker": self.tracker,
            "frames": list(self.frames),
            "prompt_frame": self.prompt_frame,
        }

    def digest(self) -> str:
        return _json_digest({"format": CACHE_FORMAT, **self.to_json()})


class TrackCache:
    """Tracks on disk under ``root/tracks/<key digest>.json``."""

    def __init__(self, root: Path, on_problem: Callable[[str], None] | None = None):
        self.root = Path(root)
        self.on_problem = on_problem or (lambda message: None)

    @classmethod
    def default(cls, on_problem: Callable[[str], None] | None = None) -> TrackCache:
        return cls(cache_root(), on_problem)

    def path(self, key: TrackCacheKey) -> Path:
        return self.root / "tracks" / f"{key.digest()}.json"

    def load(self, key: TrackCacheKey) -> Tracks | None:
        """The cached tracks for ``key``; None when absent or unusable (then the entry is removed)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return self._read(path, key)
        # RecursionError: json.loads on absurdly deep nesting, as a tampered file may hold
        except (OSError, ValueError, RecursionError, GarvidError) as error:
            self.on_problem(f"tracking cache entry {path.name} is unusable ({error}); tracking again")
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass  # a read-only cache: the entry stays, is refused again next time, and the run goes on
            return None

    def _read(self, path: Path, key: TrackCacheKey) -> Tracks:
        entry = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT:
            raise ValueError(f"not a format-{CACHE_FORMAT} entry")
        if entry.get("key") != key.to_json():
            raise ValueError("it was stored for another key")
        tracks = Tracks.from_json(entry.get("tracks"))
        if tuple(tracks.frames) != key.frames or tracks.prompt_frame != key.prompt_frame:
            raise ValueError("its frames do not match its key")
        return tracks

    def store(self, key: TrackCacheKey, tracks: Tracks) -> Path | None:
        """Save ``tracks`` for ``key`` and return the entry's path.

        When the cache cannot be written this is reported through ``on_problem`` and None
        is returned: a cache never breaks a run.
        """
        path = self.path(key)
        entry = {"format": CACHE_FORMAT, "key": key.to_json(), "tracks": tracks.to_json()}
        try:
            with atomic_path(path) as temp:
                temp.write_text(json.dumps(entry, separators=(",", ":")), encoding="utf-8")
        except OSError as error:
            self.on_problem(f"cannot write the tracking cache in {self.root} ({error.strerror or error}); continuing without it")
            return None
        return path
