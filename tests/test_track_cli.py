"""`garvid track` from the command line: output, rendering, help and every user error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from garvid.media.video_file import Video
from garvid.output.overlay import object_colour

ROOT = Path(__file__).resolve().parents[1]
SAMPLE, SAMPLE_MASK = ROOT / "samples" / "cups.mp4", ROOT / "samples" / "cups_mask.png"


def garvid(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed CLI exactly as a user would."""
    return subprocess.run([sys.executable, "-m", "garvid_cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("track")
    done = garvid(
        "track", str(SAMPLE), "--mask", str(SAMPLE_MASK), "--tracker", "tiny-random", "--stride", "40",
        "-o", str(out / "t.json"), "--render", str(out / "overlay.mp4"),
    )
    assert done.returncode == 0, done.stderr
    return json.loads((out / "t.json").read_text()), out / "overlay.mp4"


def test_json_schema(tracked: tuple[dict, Path]) -> None:
    data, _ = tracked
    assert data["video"] == {
        "path": str(SAMPLE), "fps": pytest.approx(29.97, abs=0.01), "num_frames": 120,
        "duration": pytest.approx(4.0, abs=0.01), "width": 640, "height": 360, "decoder": "decord",
    }
    assert data["tracker"]["name"] == "tiny-random" and data["tracker"]["stride"] == 40
    assert [o["id"] for o in data["objects"]] == [1, 2, 3, 4]
    labels = np.asarray(Image.open(SAMPLE_MASK))
    for obj in data["objects"]:
        assert [f["frame"] for f in obj["frames"]] == [0, 40, 80]
        first = obj["frames"][0]
        assert set(first) == {"frame", "time", "bbox", "area", "score", "mask"}
        ys, xs = np.nonzero(labels == obj["id"])
        assert first["bbox"] == [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]
        decoded = coco_mask.decode({"size": first["mask"]["size"], "counts": first["mask"]["counts"].encode()})
        assert decoded.sum() == first["area"] == len(xs)
        assert 0.0 <= first["score"] <= 1.0
        assert obj["frames"][1]["time"] == pytest.approx(40 / 29.97, abs=1e-3)


@pytest.mark.slow
def test_the_tracks_are_the_same_with_torchcodec(tracked: tuple[dict, Path], tmp_path: Path) -> None:
    done = garvid(
        "track", str(SAMPLE), "--mask", str(SAMPLE_MASK), "--tracker", "tiny-random", "--stride", "40",
        "--decoder", "torchcodec", "-o", str(tmp_path / "t.json"),
    )
    assert done.returncode == 0, done.stderr
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["video"].pop("decoder") == "torchcodec"
    assert data == {**tracked[0], "video": {k: v for k, v in tracked[0]["video"].items() if k != "decoder"}}


def test_overlay_paints_each_object_in_its_colour(tracked: tuple[dict, Path]) -> None:
    data, overlay = tracked
    with Video(overlay) as video:
        assert video.info.num_frames == 120  # every frame of the video, masks held from the nearest tracked frame
        frame = video.frames([0])[0].astype(int)
    with Video(SAMPLE) as video:
        original = video.frames([0])[0].astype(int)
    labels = np.asarray(Image.open(SAMPLE_MASK))
    for obj in data["objects"]:
        inside = labels == obj["id"]
        colour = np.array(object_colour(obj["id"]))
        # blended pixels move towards the object's colour; pixels outside every mask stay put
        towards = np.abs(frame[inside] - colour).mean() < np.abs(original[inside] - colour).mean()
        assert towards, obj["id"]
    far = labels == 0
    far[150:260, 150:520] = False  # skip labels and contours near the objects
    assert np.abs(frame[far] - original[far]).mean() < 6


def test_stdout_carries_only_the_json(tmp_path: Path) -> None:
    done = garvid("track", str(SAMPLE), "--point", "200,230", "--tracker", "tiny-random", "--stride", "60")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [o["id"] for o in data["objects"]] == [1]
    assert "tiny-random has random weights: its masks are meaningless" in done.stderr


def test_help_shows_an_example() -> None:
    for args, example in ((["--help"], "garvid ask"), (["track", "--help"], "garvid track")):
        done = garvid(*args)
        assert done.returncode == 0 and "Example" in done.stdout and example in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["track", "missing.mp4", "--mask", str(SAMPLE_MASK)], "missing.mp4"),
        (["track", str(SAMPLE)], "no objects given"),
        (["track", str(SAMPLE), "--mask", "nope.png"], "mask file not found: nope.png"),
        (["track", str(SAMPLE), "--mask", str(ROOT / "README.md")], "not an image"),
        (["track", str(SAMPLE), "--box", "1,2,3"], "expected 4 comma-separated numbers"),
        (["track", str(SAMPLE), "--point", "700,10"], "outside the 640x360 frame"),
        (["track", str(SAMPLE), "--mask", str(SAMPLE_MASK), "--mask-frame", "500"], "outside the video"),
        (["track", str(SAMPLE), "--mask", str(SAMPLE_MASK), "--tracker", "nope"], "unknown tracker preset 'nope'"),
        (["track", str(SAMPLE), "--mask", str(SAMPLE_MASK), "--render", "x.gif"], "should end in .mp4"),
        (["track", str(SAMPLE), "--mask", str(SAMPLE_MASK), "--stride", "0"], "--stride must be a whole number of at least 1, or auto"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_no_output_file(tmp_path: Path, args: list[str], message: str) -> None:
    done = garvid(*args, "-o", str(tmp_path / "out.json"), cwd=tmp_path if "nope.png" in args else None)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_mask_of_another_size_needs_resize_masks(tmp_path: Path) -> None:
    small = tmp_path / "small.png"
    Image.open(SAMPLE_MASK).resize((320, 180), Image.NEAREST).save(small)
    refused = garvid("track", str(SAMPLE), "--mask", str(small), "--tracker", "tiny-random", "-o", str(tmp_path / "a.json"))
    assert refused.returncode == 2
    assert "320x180 but the video is 640x360" in refused.stderr and "--resize-masks" in refused.stderr
    assert not (tmp_path / "a.json").exists()
    resized = garvid(
        "track", str(SAMPLE), "--mask", str(small), "--resize-masks", "--tracker", "tiny-random", "--stride", "119",
        "-o", str(tmp_path / "b.json"),
    )
    assert resized.returncode == 0, resized.stderr
    assert len(json.loads((tmp_path / "b.json").read_text())["objects"]) == 4


def test_tracks_are_cached_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from garvid_cli.main import run

    from garvid.tracking.tracker import Sam2Tracker

    args = ["track", str(SAMPLE), "--mask", str(SAMPLE_MASK), "--tracker", "tiny-random", "--stride", "60", "--cache-dir", str(tmp_path / "c")]
    assert run([*args, "-o", str(tmp_path / "first.json")]) == 0
    assert list((tmp_path / "c").glob("tracks-v*/*.json"))  # one entry per object

    def forbidden(*args, **kwargs):
        raise AssertionError("the cached tracks should have served")

    monkeypatch.setattr(Sam2Tracker, "from_preset", classmethod(forbidden))
    assert run([*args, "-o", str(tmp_path / "second.json")]) == 0, capsys.readouterr().err
    first, second = (json.loads((tmp_path / name).read_text()) for name in ("first.json", "second.json"))
    assert first["objects"] == second["objects"]
    # the same content at another path: served from the cache, described as the video read now
    moved = tmp_path / "moved.mp4"
    moved.write_bytes(SAMPLE.read_bytes())
    assert run([*args[:1], str(moved), *args[2:], "-o", str(tmp_path / "moved.json")]) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "moved.json").read_text())["video"]["path"] == str(moved)
