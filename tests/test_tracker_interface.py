"""The tracker interface: what every tracker shares, and trackers built from a preset's backend."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from garvid import presets
from garvid.errors import CheckpointError
from garvid.regions.input import RegionInput
from garvid.tracking import LazyTracker, ObjectObservation, Sam2Tracker, Tracker, Tracks, make_tracker
from garvid.tracking.backends import BACKENDS, tracker_backend
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
    trackers = [Sam2Tracker(predictor, "tiny"), LazyTracker("tiny-random", "cpu"), GivenMasks([]), StillTracker()]
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

