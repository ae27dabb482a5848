"""``--tracks FILE``: a ``garvid track`` JSON used instead of SAM2, checked against the video first."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from garvid_cli.main import run

from garvid.media.open import open_video
from garvid.regions.masks import decode_rle, encode_rle
from garvid.tracking import ObjectObservation, Tracks
from garvid.tracking.tracker import Sam2Tracker

TINY = ["--model", "tiny-random", "--device", "cpu", "--max-new-tokens", "2", "--frames", "3", "--format", "json"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    video = tmp_path_factory.mktemp("tracksfile") / "clip.mp4"
    source = "testsrc=size=96x64:rate=10:duration=2"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", source, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(video)], check=True)
    return video


def _tracks_json(clip: Path, frames=range(0, 20, 2), objects=(1, 2)) -> dict:
    """What ``garvid track`` would write for two boxes drifting right."""
    with open_video(clip) as video:
        info, times = video.info, video.timestamps()
    observations = {}
    for object_id in objects:
        rows = []
        for frame in frames:
            mask = np.zeros((info.height, info.width), dtype=bool)
            mask[10 * object_id : 10 * object_id + 12, frame : frame + 20] = True
            rows.append(ObjectObservation.from_mask(mask, 0.9))
        observations[object_id] = rows
    frames = list(frames)
    return Tracks(info, list(objects), frames, [float(times[f]) for f in frames], observations, "my-annotations", 2, "none", 0).to_json()


@pytest.fixture
def no_sam2(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("SAM2 must not load with --tracks")

    monkeypatch.setattr(Sam2Tracker, "from_preset", refuse)


def _write(tmp_path: Path, data) -> Path:
    path = tmp_path / "tracks.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_ask_with_a_tracks_file_runs_no_tracker(clip, tmp_path, capsys, no_sam2):
    path = _write(tmp_path, _tracks_json(clip))
    assert run(["ask", str(clip), "what does object 2 do to object 1?", "--tracks", str(path), *TINY]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tracker"]["name"] == "my-annotations" and data["tracker"]["file"] == str(path)
    assert data["tracker"]["tracked_objects"] == [] and [o["id"] for o in data["objects"]] == [1, 2]
    assert all(k["frame"] % 2 == 0 for k in data["keyframes"])  # keyframes among the file's frames
    assert data["objects"][0]["keyframes"][0]["bbox"] is not None


def test_describe_with_a_tracks_file_describes_its_objects(clip, tmp_path, capsys, no_sam2):
    path = _write(tmp_path, _tracks_json(clip, objects=(1, 3)))
    assert run(["describe", str(clip), "--tracks", str(path), *TINY]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [o["id"] for o in data["descriptions"][0]["objects"]] == [1, 3]


def _break(data: dict, how: str) -> dict | str:
    if how == "not-json":
        return "{not json"
    if how == "size":
        data["video"]["width"] = 128  # a tracks file made for a wider video: masks 128 wide too
        for entry in data["objects"]:
            for frame in entry["frames"]:
                wide = np.zeros((64, 128), dtype=bool)
                wide[:, :96] = decode_rle(frame["mask"])
                frame["mask"] = encode_rle(wide)
    elif how == "frame-count":
        data["video"]["num_frames"] = 30
    elif how == "frame-index":
        data["objects"][0]["frames"][-1]["frame"] = 25
        data["objects"][1]["frames"][-1]["frame"] = 25
    elif how == "object-id":
        data["objects"][1]["id"] = 7
    elif how == "rle-size":
        data["objects"][0]["frames"][1]["mask"]["size"] = [32, 96]
    elif how == "missing-field":
        del data["objects"][0]["frames"][0]["bbox"]
    elif how == "video-width":  # the file's own video.width is wrong, its masks right
        data["video"]["width"] = 95
    elif how == "inverted-bbox":
        x1, y1, x2, y2 = data["objects"][0]["frames"][0]["bbox"]
        data["objects"][0]["frames"][0]["bbox"] = [x2, y1, x1, y2]
    elif how == "huge-area":
        data["objects"][0]["frames"][0]["area"] = 10**300
    return data


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("not-json", "is not a JSON file"),
        ("size", "is for a 128x64 video, .*clip.mp4 is 96x64"),
        ("frame-count", "is for a video of 30 frames, .*has 20"),
        ("frame-index", r"objects\[0\].frames fall outside the video's 20 frames"),
        ("object-id", "object id 7 is not one GAR can name"),
        ("rle-size", r"objects\[0\].frames\[1\].mask.size is \[32, 96\]"),
        ("missing-field", r"objects\[0\].frames\[0\] lacks 'bbox'"),
        ("video-width", r"mask.size is \[64, 96\], but this file's video is 95x64 \(video.width, video.height\): one of them is wrong"),
        ("inverted-bbox", r"objects\[0\].frames\[0\].bbox \[\d+, \d+, \d+, \d+\] is inverted"),
        ("huge-area", r"area 10{29}\.\.\. \(301 characters\) is not the mask's 240 pixels"),
    ],
)
def test_bad_tracks_files_fail_in_one_line_before_models_load(clip, tmp_path, capsys, monkeypatch, no_sam2, how, message):
    import garvid.gar.loading

    monkeypatch.setattr(garvid.gar.loading, "load_gar", lambda *a, **k: pytest.fail("GAR must not load"))
    path = _write(tmp_path, _break(_tracks_json(clip), how))
    assert run(["ask", str(clip), "what does object 1 do?", "--tracks", str(path), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("garvid: error: --tracks ") and err.count("\n") == 1, err
    assert __import__("re").search(message, err), err


def test_tracks_file_problems_in_the_request(clip, tmp_path, capsys, no_sam2):
    path = _write(tmp_path, _tracks_json(clip))
    mask = tmp_path / "mask.png"
    mask.write_bytes(b"")
    assert run(["ask", str(clip), "what does object 1 do?", "--tracks", str(path), "-m", str(mask), *TINY]) == 2
    assert "--tracks gives the objects and their masks: give no masks" in capsys.readouterr().err
    assert run(["ask", str(clip), "what does object 4 do?", "--tracks", str(path), *TINY]) == 2
    err = capsys.readouterr().err
    assert "'object 4' but there are objects 1, 2 only" in err and "masks" not in err  # the tracks file gave them
    assert run(["ask", str(clip), "what does object 1 do?", "--tracks", str(tmp_path / "absent.json"), *TINY]) == 2
    assert "cannot read --tracks" in capsys.readouterr().err


def test_batch_manifest_items_take_tracks_instead_of_masks(clip, tmp_path, capsys, no_sam2):
    path = _write(tmp_path, _tracks_json(clip))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"video": str(clip), "tracks": "tracks.json", "id": "given"}) + "\n")
    batch_tiny = [a for a in TINY if a not in ("--format", "json")]
    assert run(["batch", str(manifest), "-q", "what does object 2 do?", *batch_tiny]) == 0
    [line] = capsys.readouterr().out.splitlines()
    item = json.loads(line)
    assert item["id"] == "given" and item["tracker"]["file"] == str(path) and item["tracker"]["tracked_objects"] == []


def test_batch_answers_questions_about_one_clip_together_sharing_encodings(clip, tmp_path, capsys, monkeypatch, no_sam2):
    from garvid.gar.model import GARModel

    first = tmp_path / "a"
    first.mkdir()
    (first / "tracks.json").write_text(json.dumps(_tracks_json(clip)))
    (tmp_path / "b.json").write_text(json.dumps(_tracks_json(clip, frames=range(0, 20, 3))))
    rows = [
        {"video": str(clip), "tracks": "a/tracks.json", "id": "a1", "question": "what does object 1 do?"},
        {"video": str(clip), "tracks": "b.json", "id": "b1", "question": "what does object 1 do?"},
        {"video": str(clip), "tracks": "a/tracks.json", "id": "a2", "question": "where is object 1 at the end?"},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    calls: list[int] = []
    encode = GARModel.encode_images
    monkeypatch.setattr(GARModel, "encode_images", lambda self, *a: calls.append(1) or encode(self, *a))
    batch_tiny = [a for a in TINY if a not in ("--format", "json")]
    assert run(["batch", str(manifest), *batch_tiny]) == 0
    items = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [item["id"] for item in items] == ["a1", "a2", "b1"]  # a clip's questions one after the other
    assert len(calls) == 2  # a2 reused a1's keyframe encodings; b1 (other tracks) encoded its own
    assert items[0]["keyframes"] == items[1]["keyframes"] != items[2]["keyframes"]
