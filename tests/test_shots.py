"""Shots: cut detection on real clips joined at known frames, frame folders, the shot cache,
the outputs (text, JSON, PySceneDetect's CSV), shot lists read back, and every user error."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from garvid_cli.main import run
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from garvid.media.frame_folder import FrameFolder
from garvid.media.open import open_video
from garvid.media.video_file import Video
from garvid.options import ShotOptions
from garvid.shots import detect
from garvid.files import json_text
from garvid.media.source import VideoInfo
from garvid.shots.formats import shots_csv, shots_json
from garvid.shots.reading import read_shots_file
from garvid.shots.shots import Shots
from garvid.tracking import shot_cache
from garvid.tracking.shot_cache import ShotCache, shots_for

CLIPS = ("cups.mp4", "dog.mp4", "juggle.mp4", "bedroom.mp4")
SECONDS = 2.5  # per clip: 75 frames at 30 fps
CUTS = [75, 150, 225]
#: PySceneDetect's CSV header row (scenedetect.output.write_scene_list).
PYSCENEDETECT_HEADER = [
    "Scene Number", "Start Frame", "Start Timecode", "Start Time (seconds)", "End Frame", "End Timecode",
    "End Time (seconds)", "Length (frames)", "Length (timecode)", "Length (seconds)",
]


def _ffmpeg(*args: str) -> None:
    done = subprocess.run(["ffmpeg", "-y", "-v", "error", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _joined(media: Path, out: Path, clips: tuple[str, ...], size: str = "160:90") -> Path:
    """``clips``' first SECONDS each, at one size and 30 fps, one after the other."""
    inputs = [arg for name in clips for arg in ("-t", str(SECONDS), "-i", str(media / name))]
    scaled = "".join(f"[{i}:v]fps=30,scale={size},setsar=1[v{i}];" for i in range(len(clips)))
    joined = "".join(f"[v{i}]" for i in range(len(clips))) + f"concat=n={len(clips)}:v=1:a=0[out]"
    _ffmpeg(*inputs, "-filter_complex", scaled + joined, "-map", "[out]", "-c:v", "libx264", "-preset", "veryfast",
            "-pix_fmt", "yuv420p", str(out))
    return out


@pytest.fixture(scope="module")
def joined(media: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four real clips joined: cuts before frames 75, 150 and 225 of 300."""
    return _joined(media, tmp_path_factory.mktemp("shots") / "joined.mp4", CLIPS)


@pytest.fixture(scope="module")
def one_shot(media: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of the juggling clip (fast motion, no cut)."""
    out = tmp_path_factory.mktemp("shots") / "juggle.mp4"
    _ffmpeg("-t", "4", "-i", str(media / "juggle.mp4"), "-vf", "fps=30,scale=160:90", "-c:v", "libx264",
            "-preset", "veryfast", "-pix_fmt", "yuv420p", str(out))
    return out


def _found(shots: Shots, expected: list[int]) -> None:
    """Every expected cut found within one frame, and no other cut."""
    assert len(shots.cuts) == len(expected), shots.cuts
    assert all(abs(got - want) <= 1 for got, want in zip(shots.cuts, expected)), shots.cuts


def test_cuts_found_where_the_clips_were_joined(joined: Path) -> None:
    info, shots = shots_for(joined, ShotOptions())
    _found(shots, CUTS)
    assert shots.num_frames == info.num_frames == 300
    assert shots.shots[0].start == 0 and shots.shots[-1].end == 300
    assert shots.shots[1].start_time == pytest.approx(shots.cuts[0] / 30, abs=1e-3)
    assert shots.shots[-1].end_time == pytest.approx(10.0, abs=1e-3)
    assert [shots.index_of(frame) for frame in (0, shots.cuts[0] - 1, shots.cuts[0], 299)] == [0, 0, 1, 3]


def test_no_cut_in_one_shot_of_fast_motion(one_shot: Path) -> None:
    _, shots = shots_for(one_shot, ShotOptions())
    assert shots.cuts == [] and len(shots) == 1 and shots.shots[0].num_frames == 120


def test_off_is_one_shot_and_threshold_matters(joined: Path) -> None:
    assert shots_for(joined, ShotOptions(shots="off"))[1].cuts == []
    # an absurd threshold finds nothing: the option reaches the detector
    assert shots_for(joined, ShotOptions(cut_threshold=200))[1].cuts == []


def test_frames_are_read_small(joined: Path, tmp_path: Path) -> None:
    wide = tmp_path / "wide.mp4"
    _ffmpeg("-i", str(joined), "-vf", "scale=640:360", "-c:v", "libx264", "-preset", "veryfast", str(wide))
    with open_video(wide, max_width=detect.DETECTION_WIDTH) as small, Video(wide) as full:
        assert (small.info.width, small.info.height) == (256, 144) and small.info.num_frames == full.info.num_frames
        frame = small.frames([100])[0]
        # the same picture as the full frame scaled down (up to the scalers' rounding)
        reference = np.asarray(Image.fromarray(full.frames([100])[0]).resize((256, 144), Image.Resampling.BOX))
        assert frame.shape == reference.shape and np.abs(frame.astype(int) - reference).mean() < 4
    _, shots = shots_for(wide, ShotOptions())
    _found(shots, CUTS)


def test_frame_folder_with_cuts(media: Path, tmp_path: Path) -> None:
    # the frames of two different clips, wider than the detection width, in one folder
    folder = tmp_path / "frames"
    folder.mkdir()
    _ffmpeg("-i", str(_joined(media, tmp_path / "two.mp4", ("dog.mp4", "bedroom.mp4"), size="320:180")), str(folder / "%05d.jpg"))
    with FrameFolder(folder, max_width=detect.DETECTION_WIDTH) as small:
        assert (small.info.width, small.info.height) == (256, 144)  # scaled down for detection
        assert small.frames([0]).shape == (1, 144, 256, 3)
    out = tmp_path / "shots.json"
    assert run(["shots", str(folder), "--fps", "30", "--no-cache", "-o", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["video"]["num_frames"] == 150
    assert len(data["cuts"]) == 1 and abs(data["cuts"][0] - 75) <= 1, data["cuts"]
    assert data["shots"][1]["start"] == pytest.approx(data["cuts"][0] / 30)


def test_cache_keyed_by_content(joined: Path, one_shot: Path, tmp_path: Path, monkeypatch) -> None:
    calls = []
    real = detect.detect_cuts

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(shot_cache, "detect_cuts", counted)
    problems: list[str] = []
    cache = ShotCache(tmp_path / "cache", on_problem=problems.append)
    video = tmp_path / "video.mp4"
    shutil.copyfile(joined, video)
    first = shots_for(video, ShotOptions(), cache=cache)[1]
    assert len(calls) == 1 and [p.parent.name for p in (tmp_path / "cache").rglob("*.json")] == ["shots-v1"]
    second = shots_for(tmp_path / "video.mp4", ShotOptions(), cache=cache)[1]
    assert len(calls) == 1 and second == first  # read from the cache
    renamed = tmp_path / "renamed.mp4"
    video.rename(renamed)
    assert shots_for(renamed, ShotOptions(), cache=cache)[1] == first and len(calls) == 1  # content, not name
    shots_for(renamed, ShotOptions(min_shot=1.0), cache=cache)
    assert len(calls) == 2  # other settings: detected again
    shutil.copyfile(one_shot, renamed)  # the file changed
    assert shots_for(renamed, ShotOptions(), cache=cache)[1].cuts == [] and len(calls) == 3
    # a damaged entry is reported and detected again, then replaced
    entry = next(p for p in cache.folder.iterdir() if json.loads(p.read_text())["cuts"] == [])
    entry.write_text("{not json")
    assert shots_for(renamed, ShotOptions(), cache=cache)[1].cuts == [] and len(calls) == 4
    assert len(problems) == 1 and "unusable" in problems[0] and json.loads(entry.read_text())["cuts"] == []
    assert not problems[1:]


def test_cli_outputs_parse_and_csv_is_pyscenedetects(joined: Path, tmp_path: Path) -> None:
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert run(["shots", str(joined), *cache, "-o", str(tmp_path / "s.json")]) == 0
    data = json.loads((tmp_path / "s.json").read_text())
    _found(Shots.from_cuts(data["cuts"], np.arange(300) / 30, 10.0), CUTS)
    assert data["source"] == "detected" and data["video"]["num_frames"] == 300
    assert [s["start_frame"] for s in data["shots"]] == [0, *data["cuts"]]
    assert run(["shots", str(joined), *cache, "-o", str(tmp_path / "s.csv")]) == 0
    rows = list(csv.reader((tmp_path / "s.csv").read_text().splitlines()))
    assert rows[0][0] == "Timecode List:" and len(rows[0]) == 4
    assert rows[1] == PYSCENEDETECT_HEADER and len(rows) == 2 + 4
    assert [int(row[1]) - 1 for row in rows[2:]] == [0, *data["cuts"]]  # 1-based start frames
    assert [int(row[4]) for row in rows[2:]] == [*data["cuts"], 300]  # inclusive 1-based end frames
    # the CSV is what PySceneDetect itself writes for these scenes
    from scenedetect import FrameTimecode
    from scenedetect.output import write_scene_list

    bounds = [0, *data["cuts"], 300]
    theirs = io.StringIO()
    scenes = [(FrameTimecode(a, fps=data["video"]["fps"]), FrameTimecode(b, fps=data["video"]["fps"])) for a, b in zip(bounds, bounds[1:])]
    write_scene_list(theirs, scenes, cut_list=[start for start, _ in scenes[1:]])
    assert (tmp_path / "s.csv").read_text() == theirs.getvalue()
    # both read back as the same shots
    for listed in ("s.csv", "s.json"):
        code = run(["shots", str(joined), "--shots", str(tmp_path / listed), "-o", str(tmp_path / f"again-{listed}.json")])
        assert code == 0
        assert json.loads((tmp_path / f"again-{listed}.json").read_text())["cuts"] == data["cuts"]


def _found_cut(line: str) -> int:
    """The first frame of the shot a text line lists ("frames 75-149 (75)")."""
    return int(line.split("frames ")[1].split("-")[0])


def test_text_lists_one_line_per_shot(joined: Path, capsys) -> None:
    assert run(["shots", str(joined), "--no-cache"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["1", "2", "3", "4"]
    assert lines[0].split()[1:4] == ["0.000s", "-", f"{_found_cut(lines[1]) / 30:.3f}s"]
    assert "frames 0-" in lines[0] and lines[3].endswith("-299 (" + lines[3].split("(")[1])


TIMES = np.arange(300) / 30  # a 10 s, 30 fps video


def _list(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _csv(rows: list[tuple[str, str]]) -> str:
    lines = [",".join(PYSCENEDETECT_HEADER)]
    lines += [f"{n},1,00:00:00.000,{start},1,00:00:00.000,{end},1,00:00:00.000,1" for n, (start, end) in enumerate(rows, 1)]
    return "Timecode List:\n" + "\n".join(lines) + "\n"


def test_shot_list_gaps_become_shots(tmp_path: Path) -> None:
    listed = read_shots_file(_list(tmp_path, "s.json", '[{"start": 0, "end": 2.5}, {"start": 5, "end": 10}]'), TIMES, 10.0)
    assert listed.cuts == [75, 150]
    listed = read_shots_file(_list(tmp_path, "s.csv", _csv([("0.000", "2.500"), ("2.500", "10.000")])), TIMES, 10.0)
    assert listed.cuts == [75]


@settings(deadline=None)  # the first example imports scenedetect and OpenCV
@given(cuts=st.lists(st.integers(1, 299), max_size=12, unique=True), fps=st.sampled_from([24.0, 25.0, 30000 / 1001, 30.0, 60.0]))
def test_written_shot_lists_read_back_as_the_same_shots(cuts: list[int], fps: float) -> None:
    times = np.round(np.arange(300) / fps, 6)
    shots = Shots.from_cuts(cuts, times, round(300 / fps, 6))
    info = VideoInfo("v.mp4", 300, fps, 160, 90, round(300 / fps, 6), 0)
    with tempfile.TemporaryDirectory() as folder:
        for name, text in (("s.csv", shots_csv(shots, fps)), ("s.json", json_text(shots_json(shots, info, "detected")))):
            path = Path(folder) / name
            path.write_text(text)
            assert read_shots_file(path, times, info.duration) == shots


SHOT_LIST_ERRORS = [
    ("s.csv", _csv([("0", "2"), ("abc", "4")]), "row 4: the start time 'abc' is not a number of seconds"),
    ("s.csv", _csv([("0", "2"), ("3", "2.5")]), "row 4: the shot ends (2.5 s) before it starts (3 s)"),
    ("s.csv", _csv([("0", "5"), ("4", "8")]), "row 4: the shot starts (4 s) before the previous one ends (5 s)"),
    ("s.csv", _csv([("0", "5"), ("5", "12")]), "row 4: the end time 12 s is beyond the video's end (10 s)"),
    ("s.csv", _csv([("-1", "5")]), "row 3: the start time -1 s is negative"),
    ("s.csv", "a,b\n1,2\n", "no 'Scene Number' header row"),
    ("s.json", '[{"start": 0, "end": 4}, {"start": 2, "end": 6}]', "item 2: the shot starts (2 s) before the previous one ends (4 s)"),
    ("s.json", '[{"start": 0, "end": 40}]', "item 1: the end time 40 s is beyond the video's end (10 s)"),
    ("s.json", '[{"start": "x", "end": 4}]', "item 1: the start time 'x' is not a number of seconds"),
    ("s.json", '[{"start": 0}]', "item 1: expected an object with start and end in seconds"),
    ("s.json", "[]", "it lists no shot"),
    ("s.json", "{", "not valid JSON"),
]


@pytest.fixture(scope="module")
def ten_seconds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shots") / "ten.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x64:rate=30:duration=10", "-pix_fmt", "yuv420p", str(out))
    return out


@pytest.mark.parametrize(("name", "text", "needle"), SHOT_LIST_ERRORS)
def test_shot_list_errors_name_file_and_row(name, text, needle, ten_seconds: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    path = _list(tmp_path, name, text)
    monkeypatch.setattr(shot_cache, "detect_cuts", _forbidden)
    code = run(["shots", str(ten_seconds), "--shots", str(path), "--no-cache"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"garvid: error: shot list {path}") and needle in err[0], err


def _forbidden(*args, **kwargs):
    raise AssertionError("cuts were detected")


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--cut-threshold", "0"], "--cut-threshold must be a positive number, not 0"),
        (["--min-shot", "-1"], "--min-shot must be zero or a positive number of seconds, not -1"),
        (["--shots", " "], "--shots must be auto, off or a shot-list file"),
        (["--format", "xml"], "--format must be one of text, json, csv, not 'xml'"),
        (["--fps", "0"], "--fps must be a positive frame rate"),
    ],
)
def test_bad_options_refused_before_work(extra: list[str], needle: str, capsys, monkeypatch) -> None:
    monkeypatch.setattr(Video, "__init__", _forbidden)
    monkeypatch.setattr(FrameFolder, "__init__", _forbidden)
    code = run(["shots", "anything.mp4", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("garvid: error: ") and needle in err[0], err


def test_bad_inputs(joined: Path, tmp_path: Path, capsys) -> None:
    text = _list(tmp_path, "notes.txt", "not a video\n")
    cases = [
        (["shots", str(text)], f"{text}: not a readable video"),
        (["shots", str(tmp_path / "missing.mp4")], f"{tmp_path / 'missing.mp4'}: no such file"),
        (["shots", str(joined), "-o", str(joined)], "is an input"),
        (["shots", str(joined), "--shots", str(tmp_path / "none.csv")], f"shot list {tmp_path / 'none.csv'}: no such file"),
    ]
    for args, needle in cases:
        code = run(args)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and needle in err[0], (args, err)
    listed = _list(tmp_path, "list.csv", shots_csv(Shots.from_cuts([75], TIMES, 10.0), 30.0))
    code = run(["shots", str(joined), "--shots", str(listed), "-o", str(listed)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is an input" in err[0], err
