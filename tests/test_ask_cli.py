"""``garvid ask`` / ``garvid describe`` end to end: tiny-random SAM2 and GAR, cache, formats, errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import srt
import webvtt
from garvid_cli.main import run
from PIL import Image

from garvid.tracking.cache import CACHE_FORMAT

SIZE = (160, 96)
TINY = ["--model", "tiny-random", "--tracker", "tiny-random", "--device", "cpu", "--max-new-tokens", "3", "--frames", "3"]
QUESTION = "what does object 2 do to object 1?"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, Path]:
    """A 2 s 160x96 test pattern at 10 fps and a palette mask with objects 1, 2 and 3."""
    folder = tmp_path_factory.mktemp("askclip")
    video = folder / "clip.mp4"
    source = f"testsrc=size={SIZE[0]}x{SIZE[1]}:rate=10:duration=2"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", source, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(video)], check=True)
    labels = np.zeros((SIZE[1], SIZE[0]), dtype=np.uint8)
    labels[10:40, 10:40] = 1
    labels[50:90, 80:130] = 2
    labels[5:20, 120:150] = 3
    mask = folder / "mask.png"
    image = Image.fromarray(labels, mode="P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 12))
    image.save(mask)
    return video, mask


def ask(clip, *extra: str, question: str = QUESTION, cache: Path | None = None) -> list[str]:
    video, mask = clip
    cache_args = ["--cache-dir", str(cache)] if cache is not None else ["--no-cache"]
    return ["ask", str(video), question, "--mask", str(mask), *TINY, *cache_args, *extra]


@pytest.mark.slow
def test_json_then_cached_second_run(clip, tmp_path, capsys):
    cache = tmp_path / "cache"
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    assert run(ask(clip, "-o", str(first), cache=cache)) == 0  # format from the suffix
    err = capsys.readouterr().err
    assert "meaningless" in err and f"wrote {first}" in err
    data = json.loads(first.read_text())
    assert set(data) >= {"video", "question", "prompt_question", "answer", "objects", "keyframes", "model", "tracker", "protocol", "timings"}
    assert data["question"] == QUESTION and data["prompt_question"] == "what does <Prompt1> do to <Prompt0>?"
    assert [o["id"] for o in data["objects"]] == [1, 2]  # object 3 is not asked about, so not tracked
    assert len(data["keyframes"]) == 3 and data["tracker"]["cached"] is False
    assert data["video"] == {
        "path": str(clip[0]), "fps": 10.0, "num_frames": 20, "duration": 2.0, "width": 160, "height": 96, "decoder": "decord"
    }
    assert data["model"]["name"] == "tiny-random" and data["protocol"] == {"name": "temporal", "version": 1, "mark_shots": True}
    entries = sorted((cache / f"tracks-v{CACHE_FORMAT}").glob("*.json"))  # one entry per tracked object
    assert sorted(json.loads(e.read_text())["key"]["object"] for e in entries) == [1, 2]
    entry = entries[0]
    entry_object = json.loads(entry.read_text())["key"]["object"]

    assert run(ask(clip, "--format", "json", "-o", str(second), cache=cache)) == 0
    again = json.loads(second.read_text())
    assert again["tracker"]["cached"] is True and again["tracker"]["tracked_objects"] == []
    assert again["answer"] == data["answer"]
    assert again["objects"] == data["objects"] and again["keyframes"] == data["keyframes"]

    entry.write_text(entry.read_text()[:200])  # a truncated entry is rebuilt, not trusted
    capsys.readouterr()
    assert run(ask(clip, "-o", str(second), cache=cache)) == 0
    assert "unusable" in capsys.readouterr().err
    rebuilt = json.loads(second.read_text())
    assert rebuilt["tracker"]["cached"] is False and rebuilt["tracker"]["tracked_objects"] == [entry_object]
    assert rebuilt["objects"] == data["objects"]
    assert json.loads(entry.read_text())["format"] == CACHE_FORMAT


def test_no_cache_writes_no_cache(clip, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GARVID_CACHE", str(tmp_path / "user-cache"))
    assert run(ask(clip, "--format", "json")) == 0
    assert json.loads(capsys.readouterr().out)["tracker"]["cached"] is False
    assert not list((tmp_path / "user-cache").glob("tracks*"))


def test_text_streams_to_stdout_with_window_times(clip, capsys):
    assert run(ask(clip, "--window", "1")) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 2 and out.endswith("\n")
    assert lines[0].startswith("[0:00.0 - 0:01.0] ") and lines[1].startswith("[0:01.0 - 0:02.0] ")


@pytest.mark.slow
def test_srt_and_vtt_windows_parse_back_with_their_times(clip, tmp_path, capsys):
    cache = tmp_path / "cache"
    assert run(ask(clip, "--window", "0.5", "-o", str(tmp_path / "a.srt"), cache=cache)) == 0
    cues = list(srt.parse((tmp_path / "a.srt").read_text()))
    assert [(c.start, c.end) for c in cues] == [(timedelta(seconds=0.5 * i), timedelta(seconds=0.5 * (i + 1))) for i in range(4)]
    assert all(c.content for c in cues)
    assert run(ask(clip, "--window", "0.5", "--format", "vtt", cache=cache)) == 0
    vtt = list(webvtt.from_buffer(io.StringIO(capsys.readouterr().out)))
    assert [(c.start, c.end) for c in vtt][:2] == [("00:00:00.000", "00:00:00.500"), ("00:00:00.500", "00:00:01.000")]
    assert len(vtt) == 4


def test_one_cue_for_the_span_without_window(clip, tmp_path):
    target = tmp_path / "span.srt"
    assert run(ask(clip, "--start", "0.5", "--end", "1.5", "-o", str(target))) == 0
    [cue] = list(srt.parse(target.read_text()))
    assert (cue.start, cue.end) == (timedelta(seconds=0.5), timedelta(seconds=1.5))


def test_describe_each_object_per_window(clip, tmp_path, capsys):
    video, mask = clip
    args = ["describe", str(video), "--mask", str(mask), *TINY, "--no-cache", "--window", "1", "--format", "json"]
    assert run(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["question"] is None and "<Prompt1>" in data["prompt_question"]
    assert [d["start"] for d in data["descriptions"]] == [0.0, 1.0]
    assert [[o["id"] for o in d["objects"]] for d in data["descriptions"]] == [[1, 2, 3], [1, 2, 3]]


def test_help_lists_the_commands_and_options():
    done = subprocess.run([sys.executable, "-m", "garvid_cli", "describe", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--window" in done.stdout and "--multiple-choice" not in done.stdout
    assert "QUESTION" not in done.stdout


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("garvid: error: "), err
    assert all(n in lines[0] for n in needles), lines[0]


@pytest.mark.parametrize(
    ("question", "extra", "needles"),
    [
        ("where is object 4?", [], ["object 4", "1, 2, 3"]),
        (QUESTION, ["--format", "xml"], ["--format"]),
        (QUESTION, ["--keyframes", "random"], ["--keyframes"]),
        (QUESTION, ["--start", "5"], ["--start"]),
        (QUESTION, ["--window", "-1"], ["--window"]),
        (QUESTION, ["--window", "inf"], ["--window", "finite"]),
        (QUESTION, ["--window", "0.01"], ["--window", "at least 0.1"]),
        (QUESTION, ["--dtype", "int8"], ["--dtype must be one of auto, bf16, fp16, fp32, not 'int8'"]),
        (QUESTION, ["--device", "tpu"], ["--device must be auto, cpu, cuda or cuda:N, not 'tpu'"]),
        ("why " * 9000 + "object 1?", [], ["the question is too long", "tokens"]),
        (QUESTION, ["--protocol", "nope"], ["unknown protocol"]),
        (QUESTION, ["--attn", "flash_attention_2"], ["flash_attention_2", "CUDA"]),  # refused before tracking
        (QUESTION, ["--attn", "fast"], ["--attn", "sdpa, flash_attention_2, eager"]),
        (QUESTION, ["--decoder", "ffmpeg"], ["--decoder must be one of auto, decord, torchcodec, not 'ffmpeg'"]),
        (QUESTION, ["--decoder", "decord", "--decode-device", "cuda"], ["--decode-device cuda needs the torchcodec decoder"]),
        (QUESTION, ["--decode-device", "gpu"], ["--decode-device must be cpu, cuda or cuda:N, not 'gpu'"]),
    ],
)
def test_bad_input_is_one_line_and_no_output_file(clip, tmp_path, capsys, question, extra, needles):
    target = tmp_path / "out.json"
    code = run(ask(clip, *extra, "-o", str(target), question=question))
    _one_line_error(code, capsys.readouterr().err, *needles)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_answer_is_the_same_with_either_decoder(clip, tmp_path):
    answers = {}
    for decoder in ("decord", "torchcodec"):
        target = tmp_path / f"{decoder}.json"
        assert run(ask(clip, "--decoder", decoder, "--window", "1", "-o", str(target))) == 0
        answers[decoder] = json.loads(target.read_text())
        assert answers[decoder]["video"].pop("decoder") == decoder
        answers[decoder].pop("timings")
    assert answers["torchcodec"] == answers["decord"]


def test_no_masks_is_an_error(clip, capsys):
    code = run(["ask", str(clip[0]), QUESTION, *TINY, "--no-cache"])
    _one_line_error(code, capsys.readouterr().err, "no objects given")


def test_options_are_checked_before_tracking(clip, tmp_path, capsys):
    cache = tmp_path / "cache"
    code = run(ask(clip, "--dtype", "int8", cache=cache))
    _one_line_error(code, capsys.readouterr().err, "--dtype must be")
    assert not cache.exists() or not any(cache.rglob("*.json"))  # nothing was tracked


def test_windows_without_a_tracked_frame_join_the_window_before(clip, tmp_path, capsys):
    target = tmp_path / "answers.json"
    code = run(ask(clip, "--window", "0.3", "--frames", "1", "--stride", "8", "-o", str(target)))
    err = capsys.readouterr().err
    assert code == 0, err
    assert "4 of 7 windows hold no tracked frame" in err
    answers = json.loads(target.read_text())["answers"]
    assert [(a["start"], a["end"]) for a in answers] == [(0.0, 0.6), (0.6, 1.5), (1.5, 2.0)]
    assert [a["keyframes"] for a in answers] == [[0], [8], [16]]


def test_more_frames_than_the_clip_has_reports_what_was_used(clip, tmp_path, capsys):
    target = tmp_path / "answer.json"
    code = run(ask(clip, "--frames", "10000", "--stride", "4", "-o", str(target)))
    assert code == 0, capsys.readouterr().err
    data = json.loads(target.read_text())
    assert data["frames_per_window"] == len(data["keyframes"]) == 5  # frames 0, 4, 8, 12, 16


def test_a_question_naming_no_object_says_which_objects_it_is_about(clip, capsys):
    assert run(ask(clip, question="what happens to objects 1 and 3?")) == 0
    err = capsys.readouterr().err
    assert "the question names no object" in err and "every object, 1, 2, 3" in err
