"""Folders of frames read like videos, and garvid commands run on them."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from garvid_cli.main import run
from PIL import Image

from garvid.errors import GarvidWarning, VideoError
from garvid.media.frame_folder import FrameFolder, folder_digest, frame_files
from garvid.media.open import open_video
from garvid.media.video_file import Video


@pytest.fixture
def png_folder(make_clip, ffmpeg_frames, tmp_path) -> tuple[Path, np.ndarray]:
    """12 PNG frames named frame_1.png .. frame_12.png (so text order differs from frame order)."""
    clip = make_clip(size=(96, 64), fps=10, seconds=1.2)
    frames = ffmpeg_frames(clip)
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(frames, 1):
        Image.fromarray(frame).save(folder / f"frame_{index}.png")
    return folder, frames


def test_frames_come_in_number_order_exactly(png_folder):
    folder, expected = png_folder
    assert [p.name for p in frame_files(folder)][:3] == ["frame_1.png", "frame_2.png", "frame_3.png"]
    with open_video(folder, fps=10) as video:
        assert isinstance(video, FrameFolder)
        assert (video.info.num_frames, video.info.width, video.info.height, video.info.fps) == (12, 96, 64, 10.0)
        assert video.info.duration == pytest.approx(1.2)
        assert np.array_equal(video.frames([11, 0, 5]), expected[[11, 0, 5]])
        assert [i for i, _ in video.iter_frames([3, 4, 5], batch_size=2)] == [3, 4, 5]
        assert video.time_of(5) == pytest.approx(0.5)


def test_default_fps_and_videos_ignore_fps(png_folder, make_clip):
    folder, _ = png_folder
    assert open_video(folder).info.fps == 30.0
    assert isinstance(open_video(make_clip(), fps=99), Video)


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        (lambda d: None, "no JPEG or PNG frames"),
        (lambda d: [Image.new("RGB", (8, 8)).save(d / n) for n in ("1.png", "001.jpg")], "both have number 1"),
        (lambda d: Image.new("RGB", (8, 8)).save(d / "cover.png"), "no number in its name"),
    ],
)
def test_bad_folders_are_one_line_errors(tmp_path, setup, needle):
    folder = tmp_path / "bad"
    folder.mkdir()
    setup(folder)
    with pytest.raises(VideoError, match=needle):
        FrameFolder(folder)


def test_unreadable_or_odd_sized_frames_are_named(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    Image.new("RGB", (16, 8)).save(folder / "0.png")
    Image.new("RGB", (8, 8)).save(folder / "1.png")
    (folder / "2.jpg").write_bytes(b"not a jpeg")
    with FrameFolder(folder) as video:
        with pytest.raises(VideoError, match="frame 1.png is 8x8"):
            video.frames([1])
        with pytest.raises(VideoError, match="cannot read frame 2.jpg"):
            video.frames([2])


def test_digest_follows_frame_content(png_folder):
    folder, _ = png_folder
    before = folder_digest(folder)
    Image.new("RGB", (96, 64), (1, 2, 3)).save(folder / "frame_7.png")
    assert folder_digest(folder) != before


def test_track_and_ask_on_a_frame_folder(png_folder, tmp_path, capsys):
    folder, _ = png_folder
    labels = np.zeros((64, 96), dtype=np.uint8)
    labels[10:30, 10:40] = 1
    mask = tmp_path / "mask.png"
    Image.fromarray(labels).save(mask)
    tiny = ["--tracker", "tiny-random", "--device", "cpu", "--fps", "10"]
    assert run(["track", str(folder), "--mask", str(mask), *tiny, "--stride", "4", "-o", str(tmp_path / "t.json")]) == 0
    tracks = json.loads((tmp_path / "t.json").read_text())
    assert tracks["video"]["fps"] == 10.0 and [f["frame"] for f in tracks["objects"][0]["frames"]] == [0, 4, 8]
    ask = ["ask", str(folder), "what is object 1 doing?", "--mask", str(mask), *tiny, "--model", "tiny-random"]
    assert run([*ask, "--frames", "2", "--max-new-tokens", "2", "--format", "json", "--no-cache"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["video"]["num_frames"] == 12 and [k["time"] for k in data["keyframes"]] == [0.3, 0.9]  # tracked 0, 3, 6, 9: the centres of two halves


def test_gaps_in_frame_numbers_warn_once_and_the_run_goes_on(png_folder, tmp_path, capsys):
    folder, _ = png_folder
    with warnings.catch_warnings():
        warnings.simplefilter("error", GarvidWarning)
        FrameFolder(folder)  # frame_1 .. frame_12: no gap, no warning
    for number in (2, 5, 6):
        (folder / f"frame_{number}.png").unlink()
    with pytest.warns(GarvidWarning, match=r"gaps \(3 of 1\.\.12 missing: 2, 5, 6\); the 9 files are read as consecutive frames at 10 fps"):
        FrameFolder(folder, fps=10)
    labels = np.zeros((64, 96), dtype=np.uint8)
    labels[10:30, 10:40] = 1
    mask = tmp_path / "mask.png"
    Image.fromarray(labels).save(mask)
    track = ["track", str(folder), "--mask", str(mask), "--tracker", "tiny-random", "--device", "cpu", "--fps", "10"]
    assert run([*track, "--stride", "4", "-o", str(tmp_path / "t.json")]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "frame numbers have gaps" in line]
    assert len(warned) == 1 and warned[0].startswith("garvid: warning:") and "frames" in warned[0]
    assert json.loads((tmp_path / "t.json").read_text())["video"]["num_frames"] == 9
