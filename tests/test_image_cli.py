"""``garvid image`` end to end with the tiny-random GAR on a real frame of cups.mp4."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from garvid_cli.main import run
from PIL import Image

from garvid.gar.prompt import DESCRIBE_INSTRUCTION
from garvid.regions.masks import mask_bbox

TINY = ["--model", "tiny-random", "--device", "cpu", "--max-new-tokens", "6"]


@pytest.fixture(scope="module")
def cups(tmp_path_factory, media) -> tuple[Path, Path]:
    """Frame 0 of cups.mp4 as PNG, and its palette mask (1 ball, 2 held cup, 3 middle, 4 right)."""
    folder = tmp_path_factory.mktemp("cups")
    frame = folder / "frame0.png"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(media / "cups.mp4"), "-frames:v", "1", str(frame)], check=True
    )
    return frame, media / "cups_first_frame.png"


def _palette_labels(cups: tuple[Path, Path]) -> np.ndarray:
    return np.asarray(Image.open(cups[1]))


def test_text_answer_streams_to_stdout_and_warns(cups, capsys):
    frame, mask = cups
    code = run(["image", str(frame), "--mask", str(mask), "what does object 2 do to object 1?", *TINY])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.endswith("\n") and out.count("\n") >= 1
    assert "meaningless" in err


def test_json_answer_to_file(cups, tmp_path, capsys):
    frame, mask = cups
    target = tmp_path / "answer.json"
    code = run(["image", str(frame), "-m", str(mask), "Is obj 2 left of #4?", *TINY, "--format", "json", "-o", str(target)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == ""
    data = json.loads(target.read_text())
    assert set(data) >= {"answer", "answer_token_ids", "question", "prompt_question", "regions", "model", "timings"}
    assert data["question"] == "Is obj 2 left of #4?"
    assert data["prompt_question"] == "Is <Prompt1> left of <Prompt3>?"
    assert 1 <= len(data["answer_token_ids"]) <= 6
    assert all(isinstance(i, int) for i in data["answer_token_ids"])
    labels = _palette_labels(cups)
    assert [r["id"] for r in data["regions"]] == [2, 4]
    for region in data["regions"]:
        assert region["bbox"] == list(mask_bbox(labels == region["id"]))
        assert region["area"] == int((labels == region["id"]).sum())
    assert data["model"]["name"] == "tiny-random"
    assert data["model"]["device"] == "cpu"
    assert set(data["timings"]) == {"preprocess", "encode", "generate", "total"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_single_region_is_described(cups, tmp_path, capsys):
    frame, _ = cups
    ball = tmp_path / "ball.png"
    Image.fromarray(((_palette_labels(cups) == 1) * 255).astype(np.uint8)).save(ball)
    code = run(["image", str(frame), "--mask", str(ball), *TINY, "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["question"] is None
    assert data["prompt_question"] == DESCRIBE_INSTRUCTION
    assert [r["id"] for r in data["regions"]] == [1]


def _assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("garvid: error:")
    for needle in needles:
        assert needle in lines[0]


def test_missing_image_is_one_line_error(cups, tmp_path, capsys):
    _, mask = cups
    target = tmp_path / "out.json"
    code = run(["image", str(tmp_path / "nope.png"), "--mask", str(mask), "what is object 1?", *TINY, "-o", str(target)])
    _assert_one_line_error(code, capsys.readouterr().err, "nope.png")
    assert list(tmp_path.iterdir()) == []


def test_undefined_object_is_one_line_error(cups, tmp_path, capsys):
    frame, mask = cups
    target = tmp_path / "out.json"
    code = run(["image", str(frame), "--mask", str(mask), "what is object 7 doing?", *TINY, "-o", str(target)])
    _assert_one_line_error(code, capsys.readouterr().err, "object 7")
    assert not target.exists()


def test_mask_size_mismatch_is_one_line_error(cups, tmp_path, capsys):
    frame, mask = cups
    small = tmp_path / "small_mask.png"
    Image.open(mask).resize((640, 360), Image.NEAREST).save(small)
    target = tmp_path / "out.json"
    code = run(["image", str(frame), "--mask", str(small), "what is object 1?", *TINY, "-o", str(target)])
    err = capsys.readouterr().err
    _assert_one_line_error(code, err, "--resize-masks", "but the image (as displayed) is 1280x720")
    assert "video" not in err
    assert not target.exists()


def _rotated_by_exif(frame: Path, target: Path) -> Path:
    """``frame`` stored turned a quarter to the left, with EXIF orientation 6 (display: turn it right)."""
    stored = Image.open(frame).convert("RGB").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(target, format="JPEG", quality=95, exif=exif)
    return target


def test_exif_orientation_is_applied_like_video_rotation(cups, tmp_path, capsys):
    """A mask drawn on the image as displayed fits; one drawn on the stored pixels does not."""
    frame, mask = cups
    photo = _rotated_by_exif(frame, tmp_path / "photo.jpg")
    assert Image.open(photo).size == (720, 1280)  # stored portrait, displayed landscape
    code = run(["image", str(photo), "-m", str(mask), "Is obj 2 left of #4?", *TINY, "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    labels = _palette_labels(cups)
    assert [r["bbox"] for r in json.loads(out)["regions"]] == [list(mask_bbox(labels == i)) for i in (2, 4)]
    stored_mask = tmp_path / "stored.png"
    Image.open(mask).transpose(Image.Transpose.ROTATE_90).save(stored_mask)
    code = run(["image", str(photo), "-m", str(stored_mask), "what is object 1?", *TINY])
    err = capsys.readouterr().err
    _assert_one_line_error(code, err, "720x1280 but the image (as displayed) is 1280x720")
    assert "video" not in err


def test_jpeg_mask_is_one_line_error(cups, tmp_path, capsys):
    frame, mask = cups
    lossy = tmp_path / "mask.jpg"
    Image.fromarray(_palette_labels(cups) * 60).save(lossy, format="JPEG")
    code = run(["image", str(frame), "--mask", str(lossy), "what is object 1?", *TINY])
    _assert_one_line_error(code, capsys.readouterr().err, "mask.jpg is a JPEG file", "PNG")


def test_repeated_mask_holding_several_objects_is_one_line_error(cups, tmp_path, capsys):
    frame, mask = cups
    ball = tmp_path / "ball.png"
    Image.fromarray(((_palette_labels(cups) == 1) * 255).astype(np.uint8)).save(ball)
    code = run(["image", str(frame), "--mask", str(ball), "--mask", str(mask), "what is object 1?", *TINY])
    _assert_one_line_error(code, capsys.readouterr().err, "holds 4 object ids (1, 2, 3, 4)", "one binary PNG per object")


def test_several_objects_without_question_is_one_line_error(cups, capsys):
    frame, mask = cups
    code = run(["image", str(frame), "--mask", str(mask), *TINY])
    _assert_one_line_error(code, capsys.readouterr().err, "no question")


@pytest.mark.parametrize(("attn", "needle"), [("flash_attention_2", "CUDA"), ("quick", "--attn must be one of")])
def test_unavailable_attention_is_refused_before_the_model_loads(cups, capsys, monkeypatch, attn, needle):
    import garvid.gar.loading

    monkeypatch.setattr(garvid.gar.loading, "load_gar", lambda *a, **k: pytest.fail("the model was loaded"))
    frame, mask = cups
    code = run(["image", str(frame), "--mask", str(mask), "what is object 1?", *TINY, "--attn", attn])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("garvid: error: ") and needle in lines[0]


def test_eager_attention_gives_the_sdpa_answer(cups, capsys):
    frame, mask = cups
    answers = []
    for attn in ("sdpa", "eager"):
        assert run(["image", str(frame), "-m", str(mask), "what is #1?", *TINY, "--attn", attn, "--format", "json"]) == 0
        answers.append(json.loads(capsys.readouterr().out)["answer_token_ids"])
    assert answers[0] == answers[1]
