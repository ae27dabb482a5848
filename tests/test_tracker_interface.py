"""The tracker interface: what every tracker shares, trackers built from a preset's backend,
and tracking's entry (``tracks_for``): given tracks, the cache per object, a tracker built by
name only when something must be tracked."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from garvid import presets
from garvid.errors import CheckpointError
from garvid.media.open import open_video
from garvid.options import TrackingOptions
from garvid.regions.input import RegionInput
from garvid.tracking import LazyTracker, ObjectObservation, Sam2Tracker, Tracker, Tracks, make_tracker
from garvid.tracking.backends import BACKENDS, tracker_backend
from garvid.tracking.cache import TrackCache
from garvid.tracking.given import GivenTracks
from garvid.tracking.provide import tracks_for
from garvid.tracking.reuse import TrackingNeed
from garvid.tracking.track_request import TrackRequest, track_video
from garvid.tracking.tracks import common_gap


class StillTracker:
    """A toy backend: every object keeps its prompt mask on every frame (a box is filled in)."""

    device_type = "cpu"

    def __init__(self, name: str = "still"):
        self.name = name
        self.calls: list[tuple[list[int], list[int]]] = []

    def track(self, video, prompts, frames, progress=None, *, stride=None) -> Tracks:
        self.calls.append((prompts.object_ids, list(frames)))
        height, width = video.info.height, video.info.width
        masks = dict(prompts.masks)
        for object_id, (x1, y1, x2, y2) in prompts.boxes.items():
            masks[object_id] = np.zeros((height, width), dtype=bool)
            masks[object_id][int(y1) : int(y2), int(x1) : int(x2)] = True
        times = video.timestamps()
        observations = {o: [ObjectObservation.from_mask(masks[o], 1.0) for _ in frames] for o in prompts.object_ids}
        return Tracks(
            video.info, prompts.object_ids, list(frames), [float(times[f]) for f in frames], observations,
            self.name, stride or common_gap(frames), "cpu", prompts.frame,
        )  # fmt: skip


@pytest.fixture
def still_backend(monkeypatch: pytest.MonkeyPatch) -> list[StillTracker]:
    """Backend ``still`` registered and preset ``still-preset`` naming it; the trackers it built."""
    built: list[StillTracker] = []

    def build(name: str, device: str) -> StillTracker:
        built.append(StillTracker(name))
        return built[-1]

    monkeypatch.setitem(BACKENDS, "still", build)
    real = presets._load

    def load(kind: str) -> dict:
        table = real(kind)
        if kind != "trackers":
            return table
        return {**table, "still-preset": {"backend": "still"}, "broken-preset": {"backend": "no-such-backend"}}

    monkeypatch.setattr(presets, "_load", load)
    return built


def test_every_tracker_has_the_interface() -> None:
    from garvid.eval.videorefer import GivenMasks

    predictor = SimpleNamespace(device=SimpleNamespace(type="cpu"))
    given = Tracks(None, [1], [0], [0.0], {1: []}, "file", 1, "none", 0)  # type: ignore[arg-type]
    trackers = [Sam2Tracker(predictor, "tiny"), LazyTracker("tiny-random", "cpu"), GivenTracks(given), GivenMasks([]), StillTracker()]
    for tracker in trackers:
        assert isinstance(tracker, Tracker), type(tracker).__name__
        assert tracker.device_type == "cpu" and isinstance(tracker.name, str)
    assert not isinstance(object(), Tracker)


def test_make_tracker_builds_the_backend_a_preset_names(still_backend: list[StillTracker]) -> None:
    tracker = make_tracker("still-preset", "cpu")
    assert still_backend == [tracker] and tracker.name == "still-preset"
    assert tracker_backend("tiny-random") == "sam2" and tracker_backend("still-preset") == "still"
    assert tracker_backend("my-checkpoint.pt") == "sam2"  # a local file is a SAM2 checkpoint
    with pytest.raises(CheckpointError, match="backend 'no-such-backend'.*backends: .*sam2.*still"):
        make_tracker("broken-preset", "cpu")
    with pytest.raises(CheckpointError, match="is for backend 'still', not sam2"):
        Sam2Tracker.from_preset("still-preset", device="cpu")
    lazy = LazyTracker("still-preset", "cpu")
    assert lazy.device_type == "cpu" and lazy.name == "still-preset" and not still_backend[1:]  # built on first use only


def test_a_preset_without_a_backend_is_sam2(monkeypatch: pytest.MonkeyPatch) -> None:
    real = presets._load
    monkeypatch.setattr(presets, "_load", lambda kind: {**real(kind), "plain": {"config": "x.yaml"}} if kind == "trackers" else real(kind))
    assert tracker_backend("plain") == "sam2"
    built = []
    monkeypatch.setitem(BACKENDS, "sam2", lambda name, device: built.append((name, device)) or StillTracker(name))
    assert make_tracker("plain", "cpu").name == "plain" and built == [("plain", "cpu")]


def test_tracker_presets_name_their_backend() -> None:
    for name in presets.preset_names("trackers"):
        assert presets.get_preset("trackers", name)["backend"] == "sam2"


# --- tracks_for ---------------------------------------------------------------------------


def _need(video, stride: int = 2) -> TrackingNeed:
    count = video.info.num_frames
    return TrackingNeed(0, count, stride, 0, count)


def test_tracks_for_tracks_once_then_reuses_the_cache(two_object_clip, tmp_path: Path) -> None:
    path, mask = two_object_clip
    regions = RegionInput(masks=(mask,))
    cache = TrackCache(tmp_path / "cache")
    tracker = StillTracker()
    with open_video(path) as video:
        prompts = regions.resolve(video.info)
        first = tracks_for(video, regions, prompts, _need(video), cache, tracker)
        assert first.tracked == [1, 2] and first.tracks.frames == list(range(0, 15, 2))
        again = tracks_for(video, regions, prompts.only([2]), _need(video, stride=4), cache, tracker)
    assert again.tracked == [] and again.tracks.object_ids == [2] and len(tracker.calls) == 1
    assert np.array_equal(again.tracks.mask(2, 4), prompts.masks[2])
    assert len(list(cache.folder.glob("*.json"))) == 2  # one entry per object


def test_a_tracker_by_name_is_built_only_when_something_is_tracked(two_object_clip, tmp_path, still_backend) -> None:
    path, mask = two_object_clip
    regions = RegionInput(masks=(mask,), boxes=("60,2,90,20",))
    cache = TrackCache(tmp_path / "cache")
    progress: list[tuple[int, int]] = []
    with open_video(path) as video:
        prompts = regions.resolve(video.info)
        first = tracks_for(video, regions, prompts, _need(video), cache, "still-preset", device="cpu")
        assert first.tracked == [1, 2, 3] and len(still_backend) == 1 and first.tracks.tracker == "still-preset"
        again = tracks_for(video, regions, prompts, _need(video), cache, "still-preset", device="cpu", progress=lambda *p: progress.append(p))
        assert again.tracked == [] and len(still_backend) == 1  # all cached: nothing built
        fresh = tracks_for(video, regions, prompts, _need(video), None, "still-preset", device="cpu")
    assert fresh.tracked == [1, 2, 3] and len(still_backend) == 2  # without a cache everything is tracked
    assert still_backend[1].calls == [([1, 2, 3], list(range(0, 15, 2)))]


def test_given_tracks_are_used_as_they_are(two_object_clip, tmp_path) -> None:
    path, mask = two_object_clip
    regions = RegionInput(masks=(mask,))
    cache = TrackCache(tmp_path / "cache")
    with open_video(path) as video:
        prompts = regions.resolve(video.info)
        file_tracks = StillTracker("my-annotations").track(video, prompts, [0, 3, 5, 9, 14])
        need = TrackingNeed(3, 10, 2, 3, video.info.num_frames)
        given = tracks_for(video, regions, prompts.only([2]), need, cache, GivenTracks(file_tracks))
    assert given.tracked == [] and given.tracks.frames == [3, 5, 9] and given.tracks.object_ids == [2]
    assert given.tracks.tracker == "my-annotations" and not cache.folder.exists()  # nothing cached


def test_in_memory_masks_key_the_cache_by_content(two_object_clip, tmp_path) -> None:
    path, _ = two_object_clip
    labels = np.zeros((64, 96), dtype=np.uint8)
    labels[5:25, 5:25] = 1
    cache = TrackCache(tmp_path / "cache")
    tracker = StillTracker()
    with open_video(path) as video:
        for array in (labels, labels.copy(), labels * 2 // 2):  # equal content: one tracking run
            regions = RegionInput(masks=(array,))
            tracks_for(video, regions, regions.resolve(video.info), _need(video), cache, tracker)
        assert len(tracker.calls) == 1
        moved = np.roll(labels, 3, axis=1)
        regions = RegionInput(masks=(moved,))
        assert tracks_for(video, regions, regions.resolve(video.info), _need(video), cache, tracker).tracked == [1]


def test_track_video_goes_through_the_entry_with_a_given_tracker(two_object_clip) -> None:
    path, mask = two_object_clip
    tracker = StillTracker()
    request = TrackRequest(path, RegionInput(masks=(mask,), frame=3), TrackingOptions(stride="auto", use_cache=False), keyframes=2, device="cpu")
    tracks = track_video(request, tracker=tracker)
    # auto stride from the tracker's device type: 15 frames, 2 keyframes x 2 frames each on a CPU
    assert tracker.calls == [([1, 2], [0, 3, 4, 8, 12])] and tracks.prompt_frame == 3
