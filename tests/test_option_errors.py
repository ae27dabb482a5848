"""Every command refuses a bad option in one line, exit 2, before any model loads or any work starts.

The option groups (garvid.options) check themselves when the CLI builds them from the
flags, so a bad value never reaches tracking or answering: here any model load, tracking
or decoding fails the test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from garvid_cli.main import run

from garvid.media.frame_folder import FrameFolder
from garvid.media.still import StillImage
from garvid.media.video_file import Video

REPO = Path(__file__).resolve().parents[1]
CLIP, MASK = REPO / "samples" / "cups.mp4", REPO / "samples" / "cups_mask.png"
QUESTION = "what does object 2 do to object 1?"


@pytest.fixture
def no_work(no_model_loads, monkeypatch):
    """Any model load or video decode is a failure of the test."""

    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the options were checked")

    for source in (Video, FrameFolder, StillImage):
        monkeypatch.setattr(source, "__init__", forbidden)


def _refused(capsys, args: list[str], needle: str) -> None:
    code = run(args)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("garvid: error: ") and needle in lines[0], err


ANSWER_CASES = [
    (["--keyframes", "bogus"], "--keyframes must be uniform or visible, not 'bogus'"),
    (["--stride", "x"], "--stride must be a whole number of at least 1, or auto; not 'x'"),
    (["--dtype", "int8"], "--dtype must be one of auto, bf16, fp16, fp32, not 'int8'"),
    (["--device", "tpu"], "--device must be auto, cpu, cuda or cuda:N, not 'tpu'"),
    (["--attn", "fast"], "--attn must be one of sdpa, flash_attention_2, eager, not 'fast'"),
    (["--window", "0.01"], "--window must be at least 0.1 s"),
    (["--start", "3", "--end", "1"], "--end (1 s) must come after the start (3 s)"),
    (["--mask-resample", "cubic"], "--mask-resample must be nearest or bicubic, not 'cubic'"),
    (["--replay-scaling", "twice"], "--replay-scaling must be reference or single, not 'twice'"),
    (["--fps", "inf"], "--fps must be a positive frame rate"),
    (["--frames", "0"], "--frames must be at least 1, not 0"),
    (["--max-new-tokens", "0"], "--max-new-tokens must be at least 1, not 0"),
    (["--top-p", "1.5"], "--top-p must lie in [0, 1], not 1.5"),
]


@pytest.mark.parametrize(("extra", "needle"), ANSWER_CASES)
@pytest.mark.parametrize("command", ["ask", "describe", "chat", "batch"])
def test_answering_commands_refuse_bad_options_before_work(command, extra, needle, no_work, capsys, tmp_path):
    if command == "ask":
        args = ["ask", str(CLIP), QUESTION, "-m", str(MASK)]
    elif command == "batch":
        args = ["batch", str(CLIP.parent), "--question", QUESTION, "-o", str(tmp_path / "out")]
    else:
        args = [command, str(CLIP), "-m", str(MASK)]
    _refused(capsys, [*args, *extra], needle)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["track", str(CLIP), "-m", str(MASK), "--stride", "0"], "--stride must be a whole number of at least 1"),
        (["track", str(CLIP), "-m", str(MASK), "--device", "gpu"], "--device must be auto, cpu, cuda or cuda:N"),
        (["track", str(CLIP), "-m", str(MASK), "--frames", "0"], "--frames must be at least 1, not 0"),
        (["segment", str(CLIP), "-m", str(MASK), "-o", "x.png", "--fps", "0"], "--fps must be a positive frame rate"),
        (["image", str(MASK), "-m", str(MASK), "--dtype", "fp64"], "--dtype must be one of auto, bf16, fp16, fp32"),
        (["image", str(MASK), "-m", str(MASK), "--replay-scaling", "x"], "--replay-scaling must be reference or single"),
        (["eval", "gar-bench-vqa", "items.json", "--attn", "x"], "--attn must be one of sdpa, flash_attention_2, eager"),
        (["eval", "videorefer-q", "items.json", "--video-root", ".", "--keyframes", "all"], "--keyframes must be uniform"),
        # the detector's threshold: no instance scores above 1, and nan compares with nothing
        (["segment", str(CLIP), "--object", "cup", "-o", "x.png", "--object-threshold", "nan"], "--object-threshold must lie in [0, 1)"),
        (["track", str(CLIP), "--object", "cup", "--object-threshold", "1"], "--object-threshold must lie in [0, 1)"),
        (["ask", str(CLIP), QUESTION, "--object", "cup", "--object-threshold", "-0.5"], "--object-threshold must lie in [0, 1)"),
        (["image", str(MASK), "--object", "cup", "--object-threshold", "1"], "--object-threshold must lie in [0, 1)"),
        # seconds between re-detections of the names
        (["track", str(CLIP), "--object", "cup", "--redetect", "0"], "--redetect must be a positive number of seconds, or off; not '0'"),
        (["ask", str(CLIP), QUESTION, "--object", "cup", "--redetect", "never"], "--redetect must be a positive number of seconds, or off"),
    ],
)
def test_other_commands_refuse_bad_options_before_work(args, needle, no_work, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "items.json").write_text(json.dumps([]))
    _refused(capsys, args, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.json"]  # nothing written


def test_batch_refuses_a_bad_keyframe_strategy_before_tracking_any_clip(no_work, capsys, tmp_path):
    """It used to track every clip and load GAR, then fail each item at the answer stage."""
    _refused(capsys, ["batch", str(CLIP.parent), "-q", QUESTION, "--keyframes", "bogus", "-o", str(tmp_path / "o")], "--keyframes")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["ask", str(MASK), QUESTION, "-m", str(MASK)], "is a still image, not a video: ask about it with `garvid image`"),
        (["describe", str(MASK), "-m", str(MASK)], "is a still image, not a video"),
        (["track", str(MASK), "-m", str(MASK)], "get its masks with `garvid segment`"),
        (["image", str(CLIP), QUESTION, "-m", str(MASK)], "is a video, not a still image: ask about it with `garvid ask`"),
    ],
)
def test_a_video_command_on_an_image_and_image_on_a_video_name_the_command_that_fits(args, needle, no_work, capsys):
    _refused(capsys, args, needle)
