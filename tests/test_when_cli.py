"""``garvid when`` from the shell: outputs that parse (text, JSON, SRT, VTT), bad input as one line
with exit 2 before any model loads."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import timedelta

import pytest
import srt
import webvtt
from garvid_cli.main import run
from test_ask_cli import _one_line_error

TINY = ["--model", "tiny-random", "--tracker", "tiny-random", "--device", "cpu", "--frames", "3"]
STATEMENT = "object 1 is above object 2"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("when-cli-cache")


def when(clip, *extra: str, statement: str = STATEMENT, cache=None) -> list[str]:
    video, mask = clip
    cache_args = ["--cache-dir", str(cache)] if cache is not None else ["--no-cache"]
    return ["when", str(video), statement, "--mask", str(mask), *TINY, *cache_args, "--window", "0.5", "--resolution", "0.1", *extra]


@pytest.mark.slow
def test_json_srt_vtt_and_text_outputs_parse(two_object_clip, tmp_path, cache, capsys):
    # tiny-random says yes a little more than no on every window: one interval over the whole clip
    assert run(when(two_object_clip, "-o", str(tmp_path / "when.json"), cache=cache)) == 0
    data = json.loads((tmp_path / "when.json").read_text())
    assert set(data) >= {"statement", "intervals", "curve", "request", "timings"}
    assert data["request"]["protocol"]["yes_no"] and data["request"]["question"].startswith("Is this true")
    assert [(w["start"], w["end"]) for w in data["curve"]] == [(0.0, 0.5), (0.5, 1.0), (1.0, 1.5)]
    assert all(0 < w["score"] < 1 and w["keyframes"] for w in data["curve"])
    intervals = [(i["start"], i["end"]) for i in data["intervals"]]
    assert intervals == [(0.0, 1.5)] and data["intervals"][0]["peak"] >= data["intervals"][0]["mean"]

    assert run(when(two_object_clip, "-o", str(tmp_path / "when.srt"), cache=cache)) == 0
    cues = list(srt.parse((tmp_path / "when.srt").read_text()))
    assert [(c.start, c.end, c.content) for c in cues] == [(timedelta(0), timedelta(seconds=1.5), STATEMENT)]

    capsys.readouterr()
    assert run(when(two_object_clip, "--format", "vtt", cache=cache)) == 0
    vtt = list(webvtt.from_buffer(io.StringIO(capsys.readouterr().out)))
    assert [(c.start, c.end, c.text) for c in vtt] == [("00:00:00.000", "00:00:01.500", STATEMENT)]

    assert run(when(two_object_clip, cache=cache)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("0:00.0 - 0:01.5  peak 0.")


@pytest.mark.parametrize(
    ("statement", "extra", "needles"),
    [
        ("   ", [], ["statement is empty"]),
        ("the dog is on the sofa", [], ["names no tracked object"]),
        ("object 3 is red", [], ["object 3", "1, 2"]),
        (STATEMENT, ["--threshold", "1"], ["--threshold", "between 0 and 1"]),
        (STATEMENT, ["--threshold", "0"], ["--threshold"]),
        (STATEMENT, ["--resolution", "1"], ["--resolution", "window"]),
        (STATEMENT, ["--resolution", "-1"], ["--resolution", "positive"]),
        (STATEMENT, ["--window", "9"], ["--window", "longer than the analysed span"]),
        (STATEMENT, ["--batch-size", "0"], ["--batch-size"]),
        (STATEMENT, ["--format", "xml"], ["--format"]),
    ],
)
def test_bad_input_is_one_line_before_any_model_loads(two_object_clip, tmp_path, capsys, monkeypatch, statement, extra, needles):
    monkeypatch.setattr("garvid.gar.loading.load_gar", lambda *a, **k: pytest.fail("GAR loaded"))
    target = tmp_path / "out.json"
    cache = tmp_path / "cache"
    code = run(when(two_object_clip, *extra, "-o", str(target), statement=statement, cache=cache))
    _one_line_error(code, capsys.readouterr().err, *needles)
    assert not target.exists() and (not cache.exists() or not any(cache.rglob("*.json")))  # nothing tracked, nothing written


def test_output_over_an_input_is_refused(two_object_clip, capsys):
    code = run(when(two_object_clip, "-o", str(two_object_clip[1]), "--format", "json"))
    _one_line_error(code, capsys.readouterr().err, "-o")


def test_help_shows_the_scan_options():
    done = subprocess.run([sys.executable, "-m", "garvid_cli", "when", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    for flag in ("--window", "--resolution", "--threshold", "--batch-size", "--frames"):
        assert flag in done.stdout
    assert "--max-new-tokens" not in done.stdout and "--multiple-choice" not in done.stdout


@pytest.mark.slow
def test_batch_when_with_a_statement_per_row(two_object_clip, tmp_path, cache):
    video, mask = two_object_clip
    manifest = tmp_path / "items.jsonl"
    rows = [{"video": str(video), "mask": str(mask), "id": "own", "question": "object 2 is below object 1"}, {"video": str(video), "mask": str(mask), "id": "run"}]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "out"
    args = ["batch", str(manifest), "--when", STATEMENT, *TINY, "--cache-dir", str(cache), "--window", "0.5", "--resolution", "0.1", "-o", str(out)]
    assert run([*args, "--batch-size", "2"]) == 0
    own, theirs = (json.loads((out / f"{name}.json").read_text()) for name in ("own", "run"))
    assert own["statement"] == "object 2 is below object 1" and theirs["statement"] == STATEMENT
    assert theirs["request"]["window"] == 0.5 and theirs["intervals"] and theirs["curve"]
    assert run([*args, "--threshold", "0.9"]) == 2  # earlier outputs answer another scan: refused, not skipped


def test_batch_when_refuses_a_second_task_and_ray(two_object_clip, tmp_path, capsys):
    base = ["batch", str(two_object_clip[0].parent), "--when", STATEMENT, *TINY, "-o", str(tmp_path / "out")]
    _one_line_error(run([*base, "--describe"]), capsys.readouterr().err, "--question, --describe and --when")
    _one_line_error(run([*base, "--engine", "ray"]), capsys.readouterr().err, "local engine")
    _one_line_error(run([*base[:3], "  ", *base[4:]]), capsys.readouterr().err, "statement is empty")


def test_batch_checks_the_resolution_against_its_own_window(two_object_clip, tmp_path, capsys):
    base = ["batch", str(two_object_clip[0].parent), "--when", STATEMENT, *TINY, "--engine", "ray", "-o", str(tmp_path / "out")]
    # a 3 s resolution fits a 5 s --window: the run goes on (to the refusal of Ray, which comes next)
    _one_line_error(run([*base, "--window", "5", "--resolution", "3"]), capsys.readouterr().err, "local engine")
    _one_line_error(run([*base, "--window", "2", "--resolution", "3"]), capsys.readouterr().err, "--resolution (3 s) must not be longer than the window (2 s)")
    _one_line_error(run([*base, "--resolution", "3"]), capsys.readouterr().err, "must not be longer than the window (2 s)")  # the default window


@pytest.mark.slow
def test_batch_when_subtitles_with_no_interval_are_kept_on_resume(two_object_clip, tmp_path, cache, monkeypatch):
    import garvid.qa.when_answering as when_answering

    video, mask = two_object_clip
    manifest = tmp_path / "items.jsonl"
    manifest.write_text(json.dumps({"video": str(video), "mask": str(mask), "id": "clip"}) + "\n")
    out = tmp_path / "out"
    args = ["batch", str(manifest), "--when", STATEMENT, *TINY, "--cache-dir", str(cache), "--threshold", "0.9999"]
    args += ["--window", "0.5", "--resolution", "0.25", "--format", "srt", "-o", str(out)]
    assert run(args) == 0
    written = out / "clip.srt"
    assert list(srt.parse(written.read_text())) == []  # the statement never held: a finished scan with no cue

    def never(*_args, **_kwargs):
        raise AssertionError("a finished scan with no interval was redone")

    monkeypatch.setattr(when_answering, "answer_when", never)
    assert run(args) == 0
