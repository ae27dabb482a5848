"""The tracking cache: hits for the same inputs, misses for others, never trusts a bad entry."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from garvid.errors import GarvidError
from garvid.media.source import VideoInfo
from garvid.regions.input import RegionInput
from garvid.tracking import ObjectObservation, Tracks
from garvid.tracking.cache import CACHE_FORMAT, TrackCache, TrackCacheKey, file_digest, regions_digest

INFO = VideoInfo(path="clip.mp4", num_frames=10, fps=10.0, width=32, height=24, duration=1.0, rotation=0)


def _tracks(frames=(0, 5), tracker="tiny-random") -> Tracks:
    mask = np.zeros((24, 32), dtype=bool)
    mask[2:6, 3:9] = True
    observations = {1: [ObjectObservation.from_mask(mask, 0.9) for _ in frames]}
    return Tracks(INFO, [1], list(frames), [f / 10 for f in frames], observations, tracker, 5, "cpu", 0)


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, RegionInput]:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not really a video, but bytes to hash")
    mask = tmp_path / "mask.png"
    Image.fromarray(np.eye(24, 32, dtype=np.uint8)).save(mask)
    return video, RegionInput(masks=(mask,))


def _key(video: Path, regions: RegionInput, tracker="tiny-random", prompt_frame=0, object_id=1, cuts=()) -> TrackCacheKey:
    return TrackCacheKey(file_digest(video), regions_digest(regions, [object_id]), tracker, prompt_frame, object_id, cuts)


def test_store_then_load_gives_the_same_tracks(tmp_path, inputs):
    cache = TrackCache(tmp_path / "cache")
    key = _key(*inputs)
    assert cache.load(key) is None
    cache.store(key, _tracks())
    assert cache.load(key).to_json() == _tracks().to_json()


def test_other_inputs_miss(tmp_path, inputs):
    video, regions = inputs
    cache = TrackCache(tmp_path / "cache")
    cache.store(_key(video, regions), _tracks())
    assert cache.load(_key(video, regions, prompt_frame=5)) is None
    assert cache.load(_key(video, regions, tracker="sam2.1-tiny")) is None
    assert cache.load(_key(video, regions, object_id=2)) is None
    assert cache.load(_key(video, regions, cuts=(12,))) is None  # other shots: tracking stops at other cuts
    before = regions_digest(regions, [1])
    Image.fromarray(np.eye(24, 32, k=1, dtype=np.uint8)).save(regions.masks[0])  # an edited mask
    assert regions_digest(regions, [1]) != before
    assert cache.load(_key(video, regions)) is None
    video.write_bytes(b"other bytes")
    assert cache.load(_key(video, regions)) is None


def test_every_prompt_field_is_in_the_regions_digest(inputs):
    _, regions = inputs
    base = regions_digest(regions, [1])
    variants = [
        RegionInput(masks=regions.masks, boxes=("1,2,10,12",)),
        RegionInput(masks=regions.masks, points=("4,5",)),
        RegionInput(masks=regions.masks, frame=3),
        RegionInput(masks=regions.masks, resize_masks=True),
    ]
    digests = {regions_digest(variant, [1]) for variant in variants}
    assert len(digests) == len(variants) and base not in digests
    assert regions_digest(regions, [1]) == base  # and it is deterministic


def test_renamed_mask_with_same_content_hits(tmp_path, inputs):
    video, regions = inputs
    cache = TrackCache(tmp_path / "cache")
    cache.store(_key(video, regions), _tracks())
    renamed = regions.masks[0].rename(tmp_path / "renamed.png")
    assert cache.load(_key(video, RegionInput(masks=(renamed,)))) is not None


def _corrupt(path: Path, how: str) -> None:
    entry = json.loads(path.read_text())
    if how == "truncated":
        path.write_text(path.read_text()[:50])
        return
    if how == "nested":
        path.write_text("[" * 100_000 + "]" * 100_000)
        return
    if how == "not-an-object":
        path.write_text("[1, 2]")
        return
    if how == "format":
        entry["format"] = 99
    elif how == "key":
        entry["key"]["tracker"] = "someone-else"
    elif how == "field":
        entry["tracks"]["objects"][0]["frames"][0]["bbox"] = [1, 2]
    elif how == "object":
        entry["tracks"]["objects"][0]["id"] = 2
    elif how in ("rle-garbage", "rle-short", "rle-long", "area"):
        first = entry["tracks"]["objects"][0]["frames"][0]
        counts = first["mask"]["counts"]
        edits = {"rle-garbage": ("counts", "zzzz"), "rle-short": ("counts", counts[:-1]), "rle-long": ("counts", counts + "1")}
        if how == "area":
            first["area"] += 1  # a mask that does not hold the pixels the entry claims
        else:
            first["mask"][edits[how][0]] = edits[how][1]
    path.write_text(json.dumps(entry))


@pytest.mark.parametrize(
    "how", ["truncated", "nested", "not-an-object", "format", "key", "field", "object", "rle-garbage", "rle-short", "rle-long", "area"]
)
def test_bad_entries_are_reported_removed_and_missed(tmp_path, inputs, how):
    problems: list[str] = []
    cache = TrackCache(tmp_path / "cache", on_problem=problems.append)
    key = _key(*inputs)
    path = cache.store(key, _tracks())
    _corrupt(path, how)
    assert cache.load(key) is None
    assert len(problems) == 1 and path.name in problems[0] and "tracking again" in problems[0]
    assert not path.exists()


def test_a_bad_entry_that_cannot_be_removed_is_still_missed(tmp_path, inputs, monkeypatch):
    problems: list[str] = []
    cache = TrackCache(tmp_path / "cache", on_problem=problems.append)
    key = _key(*inputs)
    path = cache.store(key, _tracks())
    _corrupt(path, "truncated")

    def refuse(self, missing_ok=False):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", refuse)  # a read-only cache directory, even as root
    assert cache.load(key) is None
    assert len(problems) == 1 and "tracking again" in problems[0]


def test_unwritable_cache_is_reported_not_raised(tmp_path, inputs):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    problems: list[str] = []
    assert TrackCache(blocker, on_problem=problems.append).store(_key(*inputs), _tracks()) is None
    assert problems and "continuing without it" in problems[0]


def test_file_digest_is_the_sha256_of_the_bytes(tmp_path):
    data = bytes(range(256)) * 5000  # more than one read chunk
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    assert file_digest(path) == hashlib.sha256(data).hexdigest()


def test_missing_file_digest_is_a_clear_error(tmp_path):
    with pytest.raises(GarvidError, match=r"cannot read .*absent\.mp4"):
        file_digest(tmp_path / "absent.mp4")


def test_an_entry_holds_one_object_and_keeps_any_frames(tmp_path, inputs):
    cache = TrackCache(tmp_path / "cache")
    with pytest.raises(ValueError, match="object 2 alone"):
        cache.store(_key(*inputs, object_id=2), _tracks())
    dense = _tracks(frames=(0, 1, 2, 3, 4, 5))
    cache.store(_key(*inputs), dense)
    assert cache.load(_key(*inputs)).frames == [0, 1, 2, 3, 4, 5]


def test_older_format_entries_are_dropped_on_first_use(tmp_path, inputs):
    root = tmp_path / "cache"
    old = root / "tracks"  # format 1: one entry per request, keyed by the tracked objects and frames
    old.mkdir(parents=True)
    (old / f"{'0' * 64}.json").write_text(json.dumps({"format": 1, "key": {}, "tracks": _tracks().to_json()}))
    future = root / "tracks-v99"  # a later garvid's cache: not this one's to remove
    future.mkdir()
    (future / "x.json").write_text("{}")
    said = []
    cache = TrackCache(root, said.append)
    assert cache.load(_key(*inputs)) is None
    assert not old.exists() and future.exists()
    assert said == [f"removed {old}, the tracking cache's folder of format 1 (1 entries): they can never be used again"]
    path = cache.store(_key(*inputs), _tracks())
    assert path.parent == root / f"tracks-v{CACHE_FORMAT}" and json.loads(path.read_text())["format"] == CACHE_FORMAT
    assert (root / f"tracks-v{CACHE_FORMAT}" / ".garvid-track-cache").is_file()  # what lets a later format remove it
    assert cache.load(_key(*inputs)) is not None


def test_the_users_own_tracks_folders_are_never_removed(tmp_path, inputs):
    """--cache-dir . in a folder holding the user's tracks/, tracks-v1/ and tracks-v1-final/:
    nothing there is provably the cache's, so all stay as they were, without a word."""
    folders = {
        "tracks": {"clip.json": json.dumps({"format": 1, "key": {}, "tracks": {}}), "notes.txt": "mine"},
        "tracks-v1": {f"{'a' * 64}.json": json.dumps({"mine": True})},
        "tracks-v1-final": {f"{'b' * 64}.json": json.dumps({"format": 1, "key": {}, "tracks": {}})},
    }
    for name, files in folders.items():
        (tmp_path / name).mkdir()
        for file, text in files.items():
            (tmp_path / name / file).write_text(text)
    (tmp_path / "tracks-v0").symlink_to(tmp_path / "tracks-v1-final")  # a link is never followed to a removal
    said = []
    cache = TrackCache(tmp_path, said.append)
    assert cache.load(_key(*inputs)) is None and cache.store(_key(*inputs), _tracks()) is not None
    for name, files in folders.items():
        assert {p.name: p.read_text() for p in (tmp_path / name).iterdir()} == files
    assert said == [] and (tmp_path / "tracks-v0").is_symlink()
