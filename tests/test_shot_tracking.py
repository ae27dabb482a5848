"""Tracking never crosses a cut: each shot is tracked alone from the prompts in it; an object
is absent (not tracked) where no prompt reaches; presence intervals are the tracked visible
frames; the tracking cache is keyed by the shots; a bad shot list is refused before models load."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
from garvid_cli.main import run
from PIL import Image

from garvid.media.source import VideoInfo
from garvid.regions.prompts import RegionPrompts
from garvid.shots.shots import Shots
from garvid.tracking.shot_tracking import track_within_shots
from garvid.tracking.tracks import ObjectObservation, Tracks

FPS, SECONDS, SIZE = 10, 1.5, (160, 90)
CUT = int(FPS * SECONDS)  # the first frame of the second clip
TINY = ["--tracker", "tiny-random", "--device", "cpu"]


@pytest.fixture(scope="module")
def two_shots(media: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """1.5 s of the cups clip then 1.5 s of the dog clip at 10 fps (a cut before frame 15), and a
    label map for frame 0 marking one box-shaped object."""
    folder = tmp_path_factory.mktemp("twoshots")
    video = folder / "two_shots.mp4"
    scaled = "".join(f"[{i}:v]fps={FPS},scale={SIZE[0]}:{SIZE[1]},setsar=1[v{i}];" for i in range(2))
    done = subprocess.run(
        ["ffmpeg", "-y", "-v", "error", "-t", str(SECONDS), "-i", str(media / "cups.mp4"), "-t", str(SECONDS),
         "-i", str(media / "dog.mp4"), "-filter_complex", scaled + "[v0][v1]concat=n=2:v=1:a=0[out]", "-map", "[out]",
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(video)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    labels = np.zeros(SIZE[::-1], np.uint8)
    labels[30:70, 40:100] = 1
    mask = folder / "mask.png"
    Image.fromarray(labels).save(mask)
    return video, mask


def _track(video: Path, mask: Path, out: Path, *extra: str) -> dict:
    code = run(["track", str(video), "--mask", str(mask), *TINY, "--stride", "2", "-o", str(out), *extra])
    assert code == 0
    return json.loads(out.read_text())


@pytest.mark.slow  # two tracking runs with the tiny tracker
def test_a_mask_in_shot_one_is_never_carried_over_the_cut(two_shots, tmp_path) -> None:
    video, mask = two_shots
    data = _track(video, mask, tmp_path / "tracks.json", "--cache-dir", str(tmp_path / "cache"))
    assert [shot["start_frame"] for shot in data["shots"]] == [0, CUT]
    (entry,) = data["objects"]
    after_cut = [f for f in entry["frames"] if f["frame"] >= CUT]
    assert after_cut and all(f["bbox"] is None and f["area"] == 0 and f["score"] == 0 for f in after_cut)
    assert entry["frames"][0]["area"] == 40 * 60  # the given mask, exact, on its frame
    assert entry["presence"] and all(p["last_frame"] < CUT for p in entry["presence"])
    # one shot (--shots off): SAM2 carries on past the cut (a sigmoid score is never exactly 0)
    whole = _track(video, mask, tmp_path / "whole.json", "--shots", "off", "--cache-dir", str(tmp_path / "cache"))
    assert len(whole["shots"]) == 1
    assert all(f["score"] > 0 for f in whole["objects"][0]["frames"] if f["frame"] >= CUT)
    # the cache keys entries by the shots: one entry per (object, shots)
    assert len(list((tmp_path / "cache").glob("tracks-v*/*.json"))) == 2


@pytest.mark.slow  # the tiny tracker over two shots
def test_prompts_in_two_shots_make_one_object_present_in_both(two_shots, tmp_path) -> None:
    video, mask = two_shots
    labels = np.zeros(SIZE[::-1], np.uint8)
    labels[10:50, 20:60] = 1  # object 1 again, where it stands in the second shot
    later = tmp_path / "later.png"
    Image.fromarray(labels).save(later)
    data = _track(video, mask, tmp_path / "tracks.json", "--mask", f"{later}@f{CUT + 4}", "--stride", "3", "--no-cache")
    (entry,) = data["objects"]  # the same id on two frames is one object
    by_frame = {f["frame"]: f for f in entry["frames"]}
    assert by_frame[0]["area"] == 40 * 60 and by_frame[CUT + 4]["area"] == 40 * 40  # each given mask, exact
    # the second prompt reaches back to the cut and on to the end, never before it
    assert all(f["score"] > 0 for f in entry["frames"] if f["frame"] >= CUT)
    shot_of = {p["first_frame"] < CUT for p in entry["presence"]}
    assert shot_of == {True, False} and all(p["first_frame"] >= CUT or p["last_frame"] < CUT for p in entry["presence"])


@pytest.mark.slow  # the tiny SAM 3 detector on each shot, then the tiny tracker
def test_an_object_by_name_is_found_again_in_each_shot(two_shots, tmp_path) -> None:
    video, _ = two_shots
    code = run(["track", str(video), "--object", "thing", "--detector", "tiny-random-sam3", "--object-threshold", "0",
                "--redetect", "off", *TINY, "--stride", "3", "--no-cache", "-o", str(tmp_path / "tracks.json")])  # fmt: skip
    assert code == 0
    data = json.loads((tmp_path / "tracks.json").read_text())
    (entry,) = data["objects"]
    # found on the first frame of each shot (threshold 0: the random detector's best instance counts), so
    # tracked in both shots under one id, where a prompt on frame 0 alone stops at the cut
    assert {p["first_frame"] < CUT for p in entry["presence"]} == {True, False}
    by_frame = {f["frame"]: f for f in entry["frames"]}
    assert by_frame[0]["area"] > 0 and by_frame[CUT]["area"] > 0


class RecordingTracker:
    """A tracker that marks every object visible everywhere and records each run it is given."""

    name, device_type = "recording", "cpu"

    def __init__(self) -> None:
        self.runs: list[tuple[list[int], list[int], list[int]]] = []  # (objects, prompt frames, frames)

    def track(self, video, prompts: RegionPrompts, frames: Sequence[int], progress=None, *, stride=None) -> Tracks:
        frames = list(frames)
        self.runs.append((prompts.object_ids, prompts.prompt_frames, frames))
        full = ObjectObservation.from_mask(np.ones((2, 2), bool), 0.9)
        info = video.info
        return Tracks(info, prompts.object_ids, frames, [f / 10 for f in frames],
                      {o: [full] * len(frames) for o in prompts.object_ids}, self.name, 1, "cpu", prompts.frame)  # fmt: skip


class FakeVideo:
    info = VideoInfo(path="fake.mp4", num_frames=40, fps=10.0, width=2, height=2, duration=4.0, rotation=0)

    def timestamps(self) -> np.ndarray:
        return np.arange(40) / 10


def test_each_shot_is_tracked_alone_and_later_first_prompts_get_their_own_run() -> None:
    video = FakeVideo()
    shots = Shots.from_cuts([10, 25], video.timestamps(), 4.0)
    one = np.ones((2, 2), bool)
    prompts = RegionPrompts(
        frame=2, masks={1: one, 2: one}, anchors=(RegionPrompts(frame=6, boxes={3: (0, 0, 1, 1)}), RegionPrompts(frame=30, masks={2: one}))
    )
    tracker = RecordingTracker()
    progress: list[tuple[int, int]] = []
    tracks = track_within_shots(tracker, video, prompts, list(range(0, 40, 2)), shots, lambda d, t: progress.append((d, t)))
    shot_one = [0, 2, 4, 6, 8]
    assert tracker.runs == [([1, 2], [2], shot_one), ([3], [6], shot_one), ([2], [30], list(range(26, 40, 2)))]
    assert progress[0] == (0, 17) and progress[-1] == (17, 17)
    # the middle shot holds no prompt: nothing there is tracked
    assert all(not tracks.observation(o, f).visible for o in (1, 2, 3) for f in range(10, 25, 2))
    assert [(p.first_frame, p.last_frame) for p in tracks.presence(2)] == [(0, 8), (26, 38)]
    assert [(p.first_frame, p.last_frame) for p in tracks.presence(1)] == [(0, 8)]


def test_presence_is_the_tracked_visible_frames_and_never_crosses_a_cut() -> None:
    video = FakeVideo()
    shots = Shots.from_cuts([20], video.timestamps(), 4.0)
    rng = np.random.default_rng(0)
    frames = list(range(0, 40, 3))
    visible = ObjectObservation.from_mask(np.ones((2, 2), bool), 0.8)
    hidden = ObjectObservation.from_mask(np.zeros((2, 2), bool), 0.1)
    seen = rng.random(len(frames)) < 0.6
    seen[[6, 7]] = True  # frames 18 and 21: visible on both sides of the cut
    tracks = Tracks(video.info, [1], frames, [f / 10 for f in frames], {1: [visible if s else hidden for s in seen]},
                    "t", 3, "cpu", 0, shots)  # fmt: skip
    intervals = tracks.presence(1)
    covered = {f for p in intervals for f in frames if p.first_frame <= f <= p.last_frame}
    assert covered == {f for f, s in zip(frames, seen) if s}
    assert all(shots.index_of(p.first_frame) == shots.index_of(p.last_frame) for p in intervals)
    assert any(p.last_frame == 18 for p in intervals) and any(p.first_frame == 21 for p in intervals)
    assert all(p.start == p.first_frame / 10 and p.end == p.last_frame / 10 for p in intervals)
    assert Tracks.from_json(json.loads(json.dumps(tracks.to_json()))).shots == shots


@pytest.mark.parametrize(
    "shots, needle",
    [
        ([{"start": 0, "end": 1.0}, {"start": 1.0, "end": "x"}], "shot list"),
        ([{"start": 1.0, "end": 2.0}, {"start": 0, "end": 1.0}], "must be in order"),
        ([{"start": 0, "end": 1.0}, {"start": 1.0, "end": 9.0}], "9"),
    ],
)
@pytest.mark.parametrize("command", ["track", "ask"])
def test_a_bad_shot_list_is_one_line_exit_2_before_models_load(two_shots, tmp_path, capsys, no_model_loads, shots, needle, command) -> None:
    video, mask = two_shots
    shot_list = tmp_path / "shots.json"
    shot_list.write_text(json.dumps(shots))
    question = ["what is object 1?", "--model", "tiny-random"] if command == "ask" else []
    code = run([command, str(video), *question, "--mask", str(mask), *TINY, "--shots", str(shot_list), "--no-cache"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line and not line.startswith("garvid: warning: tiny-random")]
    assert code == 2 and len(errors) == 1 and errors[0].startswith("garvid: error: ") and needle in errors[0], err
