"""The issue's acceptance run on the real cups clip (10 s, 1280x720) with the tiny models."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import srt
from garvid_cli.main import run

QUESTION = "what does object 2 do to object 1?"
TINY = ["--model", "tiny-random", "--tracker", "tiny-random", "--max-new-tokens", "8"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cups-cache")


@pytest.fixture(scope="module")
def ask_cups(media) -> list[str]:
    """``garvid ask`` on cups.mp4 with its frame-0 mask (1 ball, 2 held cup) and the question."""
    return ["ask", str(media / "cups.mp4"), "--mask", str(media / "cups_first_frame.png"), QUESTION]


def test_json_with_8_keyframes(ask_cups, cache, tmp_path, capsys):
    target = tmp_path / "cups.json"
    args = [*ask_cups, "--frames", "8", "--format", "json", *TINY]
    assert run([*args, "--cache-dir", str(cache), "-o", str(target)]) == 0, capsys.readouterr().err
    data = json.loads(target.read_text())
    assert data["video"]["num_frames"] == 300 and data["video"]["width"] == 1280
    assert len(data["keyframes"]) == 8 and data["frames_per_window"] == 8
    assert [o["id"] for o in data["objects"]] == [1, 2]
    assert data["objects"][0]["keyframes"][0]["frame"] == data["keyframes"][0]["frame"]
    assert data["tracker"]["tracked_frames"] <= 2 * 8 + 1  # CPU: about two tracked frames per keyframe
    times = [k["time"] for k in data["keyframes"]]
    assert times == sorted(times) and 0.0 <= times[0] < 1.0 and 9.0 < times[-1] < 10.01


def test_srt_reads_back_with_the_span(ask_cups, cache, tmp_path):
    target = tmp_path / "cups.srt"
    args = [*ask_cups, "--frames", "8", *TINY, "--cache-dir", str(cache)]
    assert run([*args, "-o", str(target)]) == 0
    [cue] = list(srt.parse(target.read_text()))
    assert cue.start == timedelta(0) and cue.end == timedelta(seconds=10.01)


def test_windows_of_2_5_seconds_give_4_cues(ask_cups, cache, tmp_path):
    target = tmp_path / "windows.srt"
    args = [*ask_cups, "--frames", "4", "--window", "2.5", *TINY]
    assert run([*args, "--cache-dir", str(cache), "-o", str(target)]) == 0
    cues = list(srt.parse(target.read_text()))
    assert [(c.start.total_seconds(), c.end.total_seconds()) for c in cues] == [(0.0, 2.5), (2.5, 5.0), (5.0, 7.5), (7.5, 10.01)]
