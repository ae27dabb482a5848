"""A cache of tracking results, per object, so later questions about a clip skip tracking.

SAM2 tracks every object on its own (see :mod:`garvid.tracking.reuse`), so an entry holds
one object's observations, keyed by what decides them: the video's content, the region
prompts' content (each prompt kind's own digest: mask file bytes or array content, boxes,
points, phrases; the prompt frame; for --object the detector and threshold) and the
object, and the tracker. The frames are not in the key: an
entry keeps every frame tracked for that object so far (grids of several requests
merged), and a request takes the frames it needs from it. Entries are JSON (never
pickles), written atomically, and checked on reading: a corrupt, foreign or inconsistent
entry is reported, deleted and tracked again, never trusted. Entries of an older format
live in another folder, which is removed on first use, and said so, only when the cache can
prove it made it (its marker file, or every file in it an entry of that format by name and
content): a folder of the user's that merely shares a name is left alone. A cache that
cannot be written is reported and otherwise ignored: it never breaks a run.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from garvid.detection.checkpoints import detection_settings
from garvid.errors import GarvidError
from garvid.files import atomic_path
from garvid.media.source import FrameSource
from garvid.options import TrackingOptions
from garvid.paths import cache_root
from garvid.regions.input import RegionInput
from garvid.regions.kinds import digests, file_sha256
from garvid.tracking.tracks import Tracks

#: Bumped whenever the entry layout or the meaning of a key changes; entries live under
#: ``tracks-v<format>/`` (format 1 used ``tracks/``), and older formats' folders are removed.
CACHE_FORMAT = 3
#: Written into each format's folder: what lets a later garvid remove the folder as its own.
MARKER = ".garvid-track-cache"
#: An entry's file name (its key's digest), or the temporary file of one being written.
_ENTRY_NAME = re.compile(r"\.?[0-9a-f]{64}\.json(\..*\.json)?")


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (hex), read in chunks; GarvidError naming the file if unreadable."""
    return file_sha256(path)


def content_digest(path: Path) -> str:
    """Digest of a video's content: its bytes, or a frame folder's frames (names and bytes)."""
    if Path(path).is_dir():
        from garvid.media.frame_folder import folder_digest

        return folder_digest(Path(path))
    return file_digest(path)


def video_key(video: FrameSource) -> str:
    """The video part of a cache key: the input's content, whichever decoder reads it.

    Both decoders give the same frames of 8-bit video (tests/test_decoders.py), so their
    tracks share entries; where a reader's frames differ (:meth:`FrameSource.frames_key`:
    torchcodec on video of more than 8 bits a sample) its name is added, and the entries
    of decord's frames keep the key they always had.
    """
    frames_key = video.frames_key()
    return content_digest(Path(video.info.path)) + (f"+{frames_key}" if frames_key else "")


def json_digest(data: Any) -> str:
    """SHA-256 (hex) of ``data`` as canonical JSON: what a cache key's digest is."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


#: The prompt groups every key holds, empty or not (format 2 always wrote them); the groups
#: of later kinds are written only when the input has such prompts, so earlier keys keep their value.
_ALWAYS_KEYED = ("masks", "boxes", "points")


def regions_digest(regions: RegionInput, object_ids: Sequence[int]) -> str:
    """Digest of the region prompts and of ``object_ids``, the objects an entry is about.

    Each prompt gives its own digest (:meth:`garvid.regions.kinds.RegionPrompt.digest`: a
    mask by content, so renaming a file keeps the digest and editing it changes it), listed
    under its kind's group; the settings they share sit beside them: the prompt frame,
    ``resize_masks`` and, for names, the detector and its threshold.
    """
    groups = {group: [] for group in _ALWAYS_KEYED} | digests(regions.prompts())
    phrases = groups.pop("phrases", [])
    key: dict[str, Any] = {"objects": sorted(object_ids), **groups, "frame": regions.frame, "resize_masks": regions.resize_masks}
    if phrases:  # what decides the detections: detector, phrases and threshold
        key["detect"] = {**detection_settings(regions), "phrases": phrases}
    return json_digest(key)


@dataclass(frozen=True)
class TrackCacheKey:
    """Everything that decides one object's tracks (on whichever frames are tracked)."""

    video: str  # content_digest of the video
    regions: str  # regions_digest of the prompts and this object
    tracker: str  # preset name, or a checkpoint path as the user gave it
    prompt_frame: int
    object_id: int
    cuts: tuple[int, ...]  # the shots tracking stayed within: another edit list tracks differently

    def to_json(self) -> dict[str, Any]:
        return {
            "video": self.video,
            "regions": self.regions,
            "tracker": self.tracker,
            "prompt_frame": self.prompt_frame,
            "object": self.object_id,
            "cuts": list(self.cuts),
        }

    def digest(self) -> str:
        return json_digest({"format": CACHE_FORMAT, **self.to_json()})


class TrackCache:
    """One object's tracks per file, under ``root/tracks-v<format>/<key digest>.json``."""

    def __init__(self, root: Path, on_problem: Callable[[str], None] | None = None):
        self.root = Path(root)
        self.on_problem = on_problem or (lambda message: None)
        self._swept = False

    @property
    def folder(self) -> Path:
        return self.root / f"tracks-v{CACHE_FORMAT}"

    def path(self, key: TrackCacheKey) -> Path:
        return self.folder / f"{key.digest()}.json"

    def load(self, key: TrackCacheKey) -> Tracks | None:
        """The cached tracks of ``key``'s object; None when absent or unusable (then the entry is removed)."""
        self._sweep_old_formats()
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
        if tracks.object_ids != [key.object_id] or tracks.prompt_frame != key.prompt_frame:
            raise ValueError("its object or prompt frame does not match its key")
        return tracks

    def store(self, key: TrackCacheKey, tracks: Tracks) -> Path | None:
        """Save one object's ``tracks`` for ``key`` (replacing the entry) and return its path.

        When the cache cannot be written this is reported through ``on_problem`` and None
        is returned: a cache never breaks a run.
        """
        if tracks.object_ids != [key.object_id]:
            raise ValueError(f"an entry holds object {key.object_id} alone, not {tracks.object_ids}")
        self._sweep_old_formats()
        path = self.path(key)
        entry = {"format": CACHE_FORMAT, "key": key.to_json(), "tracks": tracks.to_json()}
        try:
            if not (self.folder / MARKER).is_file():
                self.folder.mkdir(parents=True, exist_ok=True)
                (self.folder / MARKER).write_text(f"garvid tracking cache, format {CACHE_FORMAT}\n", encoding="utf-8")
            with atomic_path(path) as temp:
                temp.write_text(json.dumps(entry, separators=(",", ":")), encoding="utf-8")
        except OSError as error:
            self.on_problem(f"cannot write the tracking cache in {self.root} ({error.strerror or error}); continuing without it")
            return None
        return path

    def _sweep_old_formats(self) -> None:
        """Remove the folders of older cache formats that the cache made (once per cache object):
        their entries can never hit. Each removal is reported; any other folder is left alone."""
        if self._swept:
            return
        self._swept = True
        old = {self.root / "tracks": 1}
        for folder in self.root.glob("tracks-v*"):
            if (number := folder.name.removeprefix("tracks-v")).isdigit() and int(number) < CACHE_FORMAT:
                old[folder] = int(number)
        for folder, number in old.items():
            entries = _own_entries(folder, number)
            if entries is not None:
                shutil.rmtree(folder, ignore_errors=True)
                self.on_problem(f"removed {folder}, the tracking cache's folder of format {number} ({entries} entries): they can never be used again")


def _own_entries(folder: Path, number: int) -> int | None:
    """How many entries ``folder`` holds when it is provably a cache folder of format ``number``
    (it holds the marker, or every file in it is such an entry by name and content); else None."""
    if folder.is_symlink() or not folder.is_dir():
        return None
    files = list(folder.iterdir())
    if (folder / MARKER).is_file():
        return len(files) - 1
    if not files:
        return None
    for path in files:
        if not (path.is_file() and not path.is_symlink() and _ENTRY_NAME.fullmatch(path.name)):
            return None
        if path.name.startswith("."):
            continue  # a write cut short
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return None
        if not (isinstance(entry, dict) and entry.get("format") == number and {"key", "tracks"} <= entry.keys()):
            return None
    return len(files)


def request_cache(tracking: TrackingOptions, on_problem: Callable[[str], None] | None = None) -> TrackCache | None:
    """The cache ``tracking`` asks for (``--cache-dir``, else garvid's cache folder), or None with ``--no-cache``."""
    return TrackCache(tracking.cache_dir or cache_root(), on_problem) if tracking.use_cache else None
