"""Per-object tracks reused across requests: SAM2 tracks objects independently, what serves a
request, what gets tracked (subsets, supersets, denser and sparser grids), and ``garvid ask``
twice through the cache."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from garvid_cli.main import run

from garvid.media.source import VideoInfo
from garvid.media.video_file import Video
from garvid.regions.prompts import RegionPrompts
from garvid.tracking import ObjectObservation, Sam2Tracker, Tracks, tracked_frames
from garvid.tracking.reuse import TrackingNeed, merge, reuse_or_track

INFO = VideoInfo(path="clip.mp4", num_frames=40, fps=10.0, width=32, height=24, duration=4.0, rotation=0)


def _fake_tracks(object_ids, frames, marker: int = 0) -> Tracks:
    """Tracks whose mask area encodes (object, frame, marker), so tests can tell runs apart."""
    observations = {}
    for object_id in object_ids:
        rows = []
        for frame in frames:
            mask = np.zeros((24, 32), dtype=bool)
            mask.flat[: 1 + object_id * 100 + frame + marker * 1000 % 300] = True
            rows.append(ObjectObservation.from_mask(mask, 0.5))
        observations[object_id] = rows
    return Tracks(INFO, sorted(object_ids), list(frames), [f / 10 for f in frames], observations, "fake", 1, "cpu", 0)


class FakeTracker:
    def __init__(self, marker: int = 1):
        self.calls: list[tuple[list[int], list[int]]] = []
        self.marker = marker

    def __call__(self, object_ids: list[int], frames: list[int]) -> Tracks:
        self.calls.append((list(object_ids), list(frames)))
        return _fake_tracks(object_ids, frames, self.marker)


def _need(stride: int, first: int = 0, stop: int = 40) -> TrackingNeed:
    return TrackingNeed(first, stop, stride, 0, 40)


def test_a_denser_grid_serves_a_sparser_need_not_the_reverse():
    dense, sparse = set(_need(2).grid), set(_need(4).grid)
    assert _need(4).served_by(dense) and _need(4).served_by(sparse)
    assert not _need(2).served_by(sparse)
    assert _need(4).served_by(set(_need(3).grid))  # every 4-frame stretch holds a multiple of 3
    assert not _need(3).served_by(set(_need(4).grid))
    assert not _need(4).served_by(set(_need(4, stop=20).grid))  # a shorter span leaves the tail uncovered
    assert _need(4, stop=20).served_by(set(_need(4).grid))  # a longer one covers a shorter
    assert not _need(4).served_by(set(_need(4).grid) - {0})  # the prompt frame is always needed


def test_nothing_cached_tracks_every_object_on_the_grid():
    track = FakeTracker()
    reuse = reuse_or_track(_need(4), [1, 2], {}, track)
    assert track.calls == [([1, 2], _need(4).grid)] and reuse.tracked == [1, 2]
    assert sorted(reuse.updated) == [1, 2] and reuse.tracks.frames == _need(4).grid
    assert all(entry.object_ids == [o] for o, entry in reuse.updated.items())


def test_a_subset_of_cached_objects_tracks_nothing():
    cached = {1: _fake_tracks([1], _need(4).grid), 2: _fake_tracks([2], _need(4).grid)}
    track = FakeTracker()
    reuse = reuse_or_track(_need(4), [2], cached, track)
    assert track.calls == [] and reuse.tracked == [] and reuse.updated == {}
    assert reuse.tracks.object_ids == [2] and reuse.tracks.to_json()["objects"] == cached[2].to_json()["objects"]


def test_a_superset_tracks_only_the_missing_object():
    cached = {1: _fake_tracks([1], _need(4).grid)}
    track = FakeTracker()
    reuse = reuse_or_track(_need(4), [1, 2], cached, track)
    assert track.calls == [([2], _need(4).grid)] and reuse.tracked == [2] and list(reuse.updated) == [2]
    assert reuse.tracks.object_ids == [1, 2]
    assert reuse.tracks.observations[1] == cached[1].observations[1]  # reused, not re-tracked


def test_a_sparser_request_uses_the_denser_frames_in_its_span():
    cached = {1: _fake_tracks([1], _need(2).grid)}
    track = FakeTracker()
    reuse = reuse_or_track(_need(8, first=0, stop=20), [1], cached, track)
    assert track.calls == [] and reuse.tracks.frames == list(range(0, 20, 2))


def test_a_denser_request_tracks_its_grid_and_merges_it():
    cached = {1: _fake_tracks([1], _need(4).grid)}
    track = FakeTracker(marker=1)
    reuse = reuse_or_track(_need(2), [1], cached, track)
    assert track.calls == [([1], _need(2).grid)] and reuse.tracks.frames == _need(2).grid
    merged = reuse.updated[1]
    assert merged.frames == sorted(set(_need(2).grid) | set(_need(4).grid))
    assert merged.observation(1, 4) == _fake_tracks([1], [4], marker=1).observation(1, 4)  # the new run wins


def test_objects_cached_on_different_grids_share_the_request_grid():
    cached = {1: _fake_tracks([1], _need(2).grid), 2: _fake_tracks([2], _need(3).grid)}
    track = FakeTracker()
    reuse = reuse_or_track(_need(4), [1, 2], cached, track)
    # object 1's stride-2 grid holds the stride-4 grid; object 2's stride-3 grid does not
    assert track.calls == [([2], _need(4).grid)]
    assert set(reuse.tracks.frames) >= set(_need(4).grid) and 6 in reuse.tracks.frames  # every shared frame serves


def test_merge_keeps_both_runs_frames():
    old, new = _fake_tracks([3], [0, 10, 20]), _fake_tracks([3], [0, 5], marker=2)
    merged = merge(old, new)
    assert merged.frames == [0, 5, 10, 20] and merged.times == [0.0, 0.5, 1.0, 2.0]
    assert merged.observation(3, 0) == new.observation(3, 0) and merged.observation(3, 10) == old.observation(3, 10)


# --- SAM2 tracks objects independently -------------------------------------------------


@pytest.fixture(scope="module")
def square_clip(tmp_path_factory) -> Path:
    """Two squares moving apart, 64x48, 12 frames at 10 fps."""
    path = tmp_path_factory.mktemp("reuse") / "squares.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "color=c=black:s=64x48:r=10:d=1.2",
         "-f", "lavfi", "-i", "color=c=white:s=12x12:r=10",
         "-f", "lavfi", "-i", "color=c=gray:s=10x10:r=10",
         "-filter_complex", "[0][1]overlay=x='4+t*10':y=6:shortest=1[a];[a][2]overlay=x='40-t*10':y=30:shortest=1",
         "-frames:v", "12", "-pix_fmt", "yuv420p", "-c:v", "libx264", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.mark.slow
def test_an_object_tracked_alone_gets_the_masks_it_gets_with_others(square_clip):
    tracker = Sam2Tracker.from_preset("tiny-random", device="cpu")
    with Video(square_clip) as video:
        first = video.frames([0])[0]
        masks = {1: first[..., 0] > 200, 2: (first[..., 0] > 60) & (first[..., 0] < 200)}
        assert masks[1].any() and masks[2].any()
        frames = tracked_frames(12, 0, 2)
        together = tracker.track(video, RegionPrompts(frame=0, masks=masks), frames)
        alone = tracker.track(video, RegionPrompts(frame=0, masks={2: masks[2]}), frames)
    assert alone.to_json()["objects"][0] == together.to_json()["objects"][1]


# --- garvid ask twice: another subset, --frames, --window --------------------------------

TINY = ["--model", "tiny-random", "--tracker", "tiny-random", "--device", "cpu", "--max-new-tokens", "2", "--format", "json"]


@pytest.fixture
def cups(two_object_clip) -> tuple[Path, Path]:
    return two_object_clip


def _ask(cups, cache: Path, question: str, *extra: str, capsys) -> dict:
    video, mask = cups
    assert run(["ask", str(video), question, "-m", str(mask), *TINY, "--cache-dir", str(cache), *extra]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_second_ask_with_other_objects_frames_or_window_tracks_nothing(cups, tmp_path, capsys):
    cache = tmp_path / "cache"
    first = _ask(cups, cache, "what does object 2 do to object 1?", "--frames", "4", capsys=capsys)
    assert first["tracker"]["tracked_objects"] == [1, 2] and first["tracker"]["cached"] is False
    for question, extra in [
        ("where is object 1 at the end?", ["--frames", "4"]),
        ("what does object 2 do?", ["--frames", "2"]),
        ("what does object 1 do?", ["--frames", "2", "--window", "1"]),
        ("what does object 1 do?", ["--frames", "2", "--start", "0.5", "--end", "1.5"]),
    ]:
        again = _ask(cups, cache, question, *extra, capsys=capsys)
        assert again["tracker"]["cached"] is True and again["tracker"]["tracked_objects"] == [], (question, extra)
    denser = _ask(cups, cache, "what does object 1 do?", "--frames", "4", "--stride", "1", capsys=capsys)
    assert denser["tracker"]["tracked_objects"] == [1] and denser["tracker"]["tracked_frames"] == 15
    sparser = _ask(cups, cache, "what does object 1 do?", "--frames", "4", capsys=capsys)
    assert sparser["tracker"]["cached"] is True and sparser["tracker"]["tracked_frames"] == 15  # the dense grid serves


def test_objects_each_served_alone_but_sharing_too_few_frames_track_on_the_requests_grid():
    """As docs/tracking-cache.md says: keyframes are frames every asked object is tracked on, so
    objects whose own frames each serve the need but whose shared frames do not (objects 1, 2
    tracked every 7th frame for --frames 4, object 3 every 13th for --frames 2) share the
    request's grid: object 1, lacking it, is tracked on it; object 3 is reused."""
    sparse = TrackingNeed(0, 39, 13, 0, 40)
    dense = TrackingNeed(0, 39, 7, 0, 40)
    cached = {1: _fake_tracks([1], dense.grid), 3: _fake_tracks([3], sparse.grid)}
    assert sparse.served_by(set(dense.grid)) and sparse.served_by(set(sparse.grid))
    assert not sparse.served_by(set(dense.grid) & set(sparse.grid))  # they share frame 0 alone
    track = FakeTracker()
    reuse = reuse_or_track(sparse, [1, 3], cached, track)
    assert track.calls == [([1], sparse.grid)] and reuse.tracked == [1]
    assert reuse.tracks.observations[3] == cached[3].observations[3]  # reused
