"""docs/architecture.md's guide to a new tracker backend, followed once: a toy backend that
returns the given masks, registered by name, chosen by a preset through the factory, and
used by ``garvid ask`` and ``garvid batch`` exactly as SAM2 is (cache keys, reuse, JSON)."""

from __future__ import annotations

import json
import shutil

import pytest
from garvid_cli.main import run

from garvid import presets
from garvid.tracking import ObjectObservation, Tracks
from garvid.tracking import backends
from garvid.tracking.backends import register_backend
from garvid.tracking.tracks import common_gap

TINY_GAR = ["--model", "tiny-random", "--device", "cpu", "--frames", "2", "--max-new-tokens", "2"]


class GivenMaskTracker:
    """Each object keeps the mask it was prompted with on every frame (the guide's toy backend)."""

    device_type = "cpu"

    def __init__(self, name: str, device: str):
        self.name = name
        self.tracked: list[list[int]] = []  # the frames of each call

    def track(self, video, prompts, frames, progress=None, *, stride=None) -> Tracks:
        self.tracked.append(list(frames))
        times = video.timestamps()
        observations = {o: [ObjectObservation.from_mask(prompts.masks[o], 1.0) for _ in frames] for o in prompts.object_ids}
        return Tracks(
            video.info, prompts.object_ids, list(frames), [float(times[f]) for f in frames], observations,
            self.name, stride or common_gap(frames), "cpu", prompts.frame,
        )  # fmt: skip


@pytest.fixture
def toy_preset(monkeypatch) -> list[GivenMaskTracker]:
    """The guide's two steps: register the backend, and a preset in the trackers table naming it."""
    built: list[GivenMaskTracker] = []

    def build(name: str, device: str) -> GivenMaskTracker:
        built.append(GivenMaskTracker(name, device))
        return built[-1]

    monkeypatch.setattr(backends, "BACKENDS", dict(backends.BACKENDS))  # registered for this test only
    register_backend("given-masks", build)
    real = presets._load
    monkeypatch.setattr(presets, "_load", lambda kind: {**real(kind), "toy": {"backend": "given-masks"}} if kind == "trackers" else real(kind))
    return built


def test_ask_and_batch_track_with_a_backend_chosen_by_preset(toy_preset, two_object_clip, tmp_path, capsys):
    video, mask = two_object_clip
    cache = tmp_path / "cache"
    ask = ["ask", str(video), "what does object 2 do to object 1?", "-m", str(mask), "--tracker", "toy", "--cache-dir", str(cache)]
    assert run([*ask, *TINY_GAR, "-f", "json"]) == 0, capsys.readouterr().err
    answer = json.loads(capsys.readouterr().out)
    assert answer["tracker"]["name"] == "toy" and answer["tracker"]["tracked_objects"] == [1, 2]
    assert len(toy_preset) == 1 and toy_preset[0].tracked  # built once, through the factory, and it tracked
    for summary in answer["objects"]:
        assert all(frame["visible"] for frame in summary["keyframes"])  # the given masks, on every keyframe

    assert run([*ask, *TINY_GAR, "-f", "json"]) == 0  # the same question again: its tracks come from the cache
    assert json.loads(capsys.readouterr().out)["tracker"]["cached"] and len(toy_preset) == 1  # not even built

    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(video, clips / "a.mp4")
    shutil.copy(mask, clips / "a.png")
    out = tmp_path / "out"
    batch = ["batch", str(clips), "-q", "where is object 1?", "--tracker", "toy", "--cache-dir", str(tmp_path / "c2"), "-o", str(out)]
    assert run([*batch, *TINY_GAR]) == 0, capsys.readouterr().err
    record = json.loads((out / "a.json").read_text())
    assert record["tracker"]["name"] == "toy"  # tracked ahead by stage 1, found in the cache by stage 2
    assert len(toy_preset) == 2  # the batch's own tracker, built from the same preset
