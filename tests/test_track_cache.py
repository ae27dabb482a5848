"""The tracking cache: hits for the same inputs, misses for others, never trusts a bad entry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from garvid.perception import RegionInput
from garvid.tracking import ObjectObservation, Tracks
from garvid.tracking.cache import TrackCache, TrackCacheKey, file_digest, regions_digest
from garvid.video import VideoInfo

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


def _key(video: Path, regions: RegionInput, frames=(0, 5), tracker="tiny-random") -> TrackCacheKey:
    return TrackCacheKey(file_digest(video), regions_digest(regions, [1]), tracker, tuple(frames), 0)


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
    assert cache.load(_key(video, regions, frames=(0, 4))) is None
    assert cache.load(_key(video, regions, tracker="sam2.1-tiny")) is None
    assert cache.load(TrackCacheKey(_key(video, regions).video, regions_digest(regions, [1, 2]), "tiny-random", (0, 5), 0)) is None
    before = regions_digest(regions, [1])
    Image.fromarray(np.eye(24, 32, k=1, dtype=np.uint8)).save(regions.masks[0])  # an edited mask
    assert regions_digest(regions, [1]) != before
    assert cache.load(_key(video, regions)) is None
    video.write_bytes(b"other bytes")
    assert cache.load(_key(video, regions)) is None


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
    if how == "format":
        entry["format"] = 99
    elif how == "key":
        entry["key"]["tracker"] = "someone-else"
    elif how == "field":
        entry["tracks"]["objects"][0]["frames"][0]["bbox"] = [1, 2]
    elif how == "frames":
        entry["tracks"] = _tracks(frames=(0, 6)).to_json()
    path.write_text(json.dumps(entry))


@pytest.mark.parametrize("how", ["truncated", "format", "key", "field", "frames"])
def test_bad_entries_are_reported_removed_and_missed(tmp_path, inputs, how):
    problems: list[str] = []
    cache = TrackCache(tmp_path / "cache", on_problem=problems.append)
    key = _key(*inputs)
    path = cache.store(key, _tracks())
    _corrupt(path, how)
    assert cache.load(key) is None
    assert len(problems) == 1 and path.name in problems[0] and "tracking again" in problems[0]
    assert not path.exists()


def test_unwritable_cache_is_reported_not_raised(tmp_path, inputs):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    problems: list[str] = []
    assert TrackCache(blocker, on_problem=problems.append).store(_key(*inputs), _tracks()) is None
    assert problems and "continuing without it" in problems[0]


def test_missing_file_digest_is_a_clear_error(tmp_path):
    from garvid.errors import GarvidError

    with pytest.raises(GarvidError, match="cannot read"):
        file_digest(tmp_path / "absent.mp4")
