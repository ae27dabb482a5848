"""``garvid batch`` over a folder of short real clips: outputs, errors, resume, Ctrl-C, pipes (Ray: test_ray_engine.py)."""

from __future__ import annotations

import io
import json
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from garvid_cli.main import run
from PIL import Image

from garvid.batch.tasks import BatchTask, tasks_from_folder, tasks_from_lines, tasks_from_manifest

QUESTION = "what does object 1 do?"
TINY = ["--model", "tiny-random", "--tracker", "tiny-random", "--device", "cpu", "--frames", "2", "--max-new-tokens", "3"]


def _cut(source: Path, target: Path, start: float, seconds: float = 1.0) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    args = ["ffmpeg", "-v", "error", "-ss", str(start), "-i", str(source), "-t", str(seconds), "-an", "-sn", "-dn"]
    subprocess.run([*args, "-vf", "scale=160:90,setsar=1", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(target)], check=True)


def _mask(palette: Path, target: Path) -> None:
    """The cups palette mask (``palette``) of objects 1 and 2, scaled to 160x90 (nearest)."""
    labels = np.asarray(Image.open(palette))
    labels = np.where(labels <= 2, labels, 0).astype(np.uint8)
    target.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels, mode="P").resize((160, 90), Image.NEAREST)
    image.putpalette([0, 0, 0, 255, 255, 0, 255, 0, 0] + [0] * (256 * 3 - 9))
    image.save(target)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, media) -> Path:
    """Good items: cups_a, cups_b (mask beside), sub/cups_c (masks/ folder); bad: no_mask, corrupt."""
    root = tmp_path_factory.mktemp("videos")
    for name, start in (("cups_a", 0.0), ("cups_b", 3.0)):
        _cut(media / "cups.mp4", root / f"{name}.mp4", start)
        _mask(media / "cups_first_frame.png", root / f"{name}.png")
    _cut(media / "cups.mp4", root / "sub" / "cups_c.mp4", 6.0)
    _mask(media / "cups_first_frame.png", root / "sub" / "masks" / "cups_c.png")
    _cut(media / "dog.mp4", root / "no_mask.mp4", 0.0)
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(300))
    _mask(media / "cups_first_frame.png", root / "corrupt.png")
    return root


def garvid(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "garvid_cli", *args], input=stdin, capture_output=True, text=True)


def _errors(out: Path) -> dict[str, dict]:
    return {e["id"]: e for e in map(json.loads, (out / "errors.jsonl").read_text().splitlines())}


def test_folder_convention_and_problems(folder):
    tasks, problems = tasks_from_folder(folder, recursive=True)
    assert [t.id for t in tasks] == ["corrupt", "cups_a", "cups_b", "sub/cups_c"]
    assert tasks[3].mask == folder / "sub" / "masks" / "cups_c.png"
    assert [(p.id, "no mask" in p.reason) for p in problems] == [("no_mask", True)]
    assert [t.id for t in tasks_from_folder(folder)[0]] == ["corrupt", "cups_a", "cups_b"]


def test_manifest_and_stdin_rows(folder, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "video,mask,question,start,id\n"
        f"{folder}/cups_a.mp4,{folder}/cups_a.png,where is #1?,0.2,first\n"
        f"{folder}/cups_b.mp4,,,,\n"
        f"{folder}/no_mask.mp4,,,,\n"
        f"{folder}/cups_b.mp4,,,,first\n"
    )
    tasks, problems = tasks_from_manifest(manifest)
    assert [(t.id, t.question, t.start) for t in tasks] == [("first", "where is #1?", 0.2), ("cups_b", None, None)]
    assert tasks[1].mask == folder / "cups_b.png"  # the folder convention when the row has no mask
    assert [p.id for p in problems] == ["no_mask", "first"] and "used twice" in problems[1].reason
    lines = [json.dumps({"video": "cups_a.mp4", "mask": "cups_a.png", "mask_frame": 0}), "cups_b.mp4", "{not json", json.dumps({"video": "x.mp4", "colour": 1})]
    tasks, problems = tasks_from_lines(lines, folder)
    assert [t.video for t in tasks] == [folder / "cups_a.mp4", folder / "cups_b.mp4"]
    assert ["not JSON" in problems[0].reason, "unknown fields" in problems[1].reason] == [True, True]


def test_folder_run_outputs_errors_then_resume_skips(folder, tmp_path, capsys):
    out = tmp_path / "out"
    code = run(["batch", str(folder), "-r", "--question", QUESTION, "-o", str(out), *TINY])
    err = capsys.readouterr().err
    assert code == 1, err  # some items failed
    # each random-weights warning once for the run, not once per item
    assert err.count("its masks are meaningless") == 1 and err.count("its text is meaningless") == 1
    outputs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json"))
    assert outputs == ["cups_a.json", "cups_b.json", "sub/cups_c.json"]
    data = json.loads((out / "sub" / "cups_c.json").read_text())
    assert data["question"] == QUESTION and data["video"]["width"] == 160 and len(data["keyframes"]) == 2
    errors = _errors(out)
    assert set(errors) == {"no_mask", "corrupt"}
    assert errors["no_mask"]["stage"] == "input" and errors["corrupt"]["stage"] == "track"
    assert "corrupt.mp4" in errors["corrupt"]["error"]
    assert "garvid batch" in err and "Traceback" not in err
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}

    started = time.perf_counter()
    code = run(["batch", str(folder), "-r", "--question", QUESTION, "-o", str(out), *TINY])
    elapsed = time.perf_counter() - started
    err = capsys.readouterr().err
    assert code == 1 and {p: p.stat().st_mtime_ns for p in out.rglob("*.json")} == before
    assert "garvid batch" in err and set(_errors(out)) == {"no_mask", "corrupt"}
    assert elapsed < 30  # nothing tracked or answered again (the first run took minutes)

    for other in (["--question", "where is object 2?"], ["--describe"], ["--question", QUESTION, "--frames", "3"]):
        code = run(["batch", str(folder), "-r", "-o", str(out), *TINY, *other])  # another request: stop, change nothing
        err = capsys.readouterr().err
        assert code == 2 and "holds answers to another request" in err and "--overwrite" in err, err
        assert {p: p.stat().st_mtime_ns for p in out.rglob("*.json")} == before and set(_errors(out)) == {"no_mask", "corrupt"}

    code = run(["batch", str(folder), "--question", QUESTION, "-o", str(out), *TINY, "--overwrite"])
    capsys.readouterr()
    assert code == 1 and (out / "cups_a.json").stat().st_mtime_ns > before[out / "cups_a.json"]


def test_srt_outputs_per_item(folder, tmp_path, capsys):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"video": str(folder / "cups_a.mp4"), "mask": str(folder / "cups_a.png")}) + "\n")
    out = tmp_path / "subs"
    assert run(["batch", str(manifest), "--describe", "--window", "0.5", "--format", "srt", "-o", str(out), *TINY]) == 0
    text = (out / "cups_a.srt").read_text()
    assert text.count(" --> ") == 2 and "Object 1:" in text and "Object 2:" in text
    assert not (out / "errors.jsonl").exists()


@pytest.mark.slow
def test_interrupted_run_resumes_without_redoing_finished_items(folder, tmp_path):
    out = tmp_path / "out"
    args = [sys.executable, "-m", "garvid_cli", "batch", str(folder), "-r", "--question", QUESTION, "-o", str(out), *TINY]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not list(out.rglob("*.json")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 130, err
    assert "stopping after the current item" in err and "Traceback" not in err
    finished = {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}
    assert 1 <= len(finished) < 3
    own = {".garvid-batch.lock", ".garvid-batch.jsonl"}  # the run's lock and its record of requests
    assert not [p for p in out.rglob("*") if p.name.startswith(".") and p.name not in own]  # no partial (temporary) files
    done = garvid("batch", str(folder), "-r", "--question", QUESTION, "-o", str(out), *TINY)
    assert done.returncode == 1
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.json") if p in finished} == finished
    assert len(list(out.rglob("*.json"))) == 3


@pytest.mark.slow
def test_stdin_jsonl_pipeline_and_closed_pipe(folder):
    tasks = "".join(json.dumps({"video": str(folder / f"{n}.mp4"), "mask": str(folder / f"{n}.png")}) + "\n" for n in ("cups_a", "cups_b"))
    done = garvid("batch", "-", "--question", QUESTION, "--format", "jsonl", *TINY, stdin=tasks)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["cups_a", "cups_b"] and all("answer" in line for line in lines)
    command = f"printf %s {shlex.quote(tasks)} | {shlex.quote(sys.executable)} -m garvid_cli batch - -q {shlex.quote(QUESTION)} {' '.join(TINY)} | head -n 1"
    piped = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True)
    assert piped.returncode == 0, piped.stderr
    assert len(piped.stdout.splitlines()) == 1 and json.loads(piped.stdout)["id"] == "cups_a"
    assert "Traceback" not in piped.stderr and "BrokenPipe" not in piped.stderr
    assert "1 answer(s) delivered" in piped.stderr  # the second answer found no reader: not counted as done


def test_an_answer_written_to_a_closed_pipe_is_not_done(tmp_path):
    from garvid.batch.sink import BatchSink

    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError

    answer = type("Answer", (), {"to_json": lambda self: {"answer": "x"}})()
    with BatchSink(None, "jsonl", stdout=ClosedPipe()) as sink:
        sink.done(BatchTask("a", tmp_path / "a.mp4", tmp_path / "a.png"), None, answer)
        assert sink.summary.done == 0 and sink.summary.pipe_closed


def test_manifest_with_a_byte_order_mark_and_json_lines_that_are_not_objects(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"")
    (tmp_path / "a.png").write_bytes(b"")
    manifest = tmp_path / "m.csv"
    manifest.write_bytes("\ufeffvideo,mask\na.mp4,a.png\n".encode("utf-8"))  # Excel's "CSV UTF-8"
    tasks, problems = tasks_from_manifest(manifest)
    assert [t.video.name for t in tasks] == ["a.mp4"] and problems == []
    lines = ["\ufeff" + json.dumps({"video": "a.mp4"}), json.dumps(["a.mp4", "a.png"]), "[1, 2"]
    tasks, problems = tasks_from_lines(lines, tmp_path)
    assert [t.video.name for t in tasks] == ["a.mp4"]
    assert "must be one object" in problems[0].reason and "not list" in problems[0].reason
    assert "not JSON" in problems[1].reason


def test_bad_batch_input_is_one_line(tmp_path, capsys):
    assert run(["batch", str(tmp_path / "nothing.txt"), "-q", QUESTION]) == 2
    assert capsys.readouterr().err.strip().startswith("garvid: error: batch input")
    assert run(["batch", str(tmp_path), "-q", QUESTION]) == 2
    assert "no videos" in capsys.readouterr().err


def test_unavailable_attention_fails_the_batch_before_any_item(folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(["batch", str(folder), "-r", "-q", QUESTION, "-o", str(out), *TINY, "--attn", "flash_attention_2"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("garvid: error: ")]
    assert len(errors) == 1 and "flash_attention_2" in errors[0]
    assert not any(out.rglob("*.json"))  # no item was tracked or answered


def test_ids_cannot_escape_the_output_folder(tmp_path, capsys, monkeypatch):
    """Absolute ids, '..' parts and symlinks out of -o are refused; nothing is written outside."""
    (tmp_path / "a.mp4").write_bytes(b"not read")
    (tmp_path / "a.png").write_bytes(b"not read")
    ids = ("../escaped", str(tmp_path / "abs"), "x/../../up", ".", "x" * 300)
    rows = [{"video": "a.mp4", "mask": "a.png", "id": task_id} for task_id in ids]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    tasks, problems = tasks_from_manifest(manifest)
    assert tasks == [] and [p.id for p in problems] == ["line 1", "line 2", "line 3", "line 4", "line 5"]
    assert all("must be a relative name inside the output folder" in p.reason for p in problems[:4])
    assert "longer than 200 bytes" in problems[4].reason
    assert [t.id for t in tasks_from_lines([json.dumps({"video": "a.mp4", "mask": "a.png", "id": "sub/./b"})], tmp_path)[0]] == ["sub/b"]

    out = tmp_path / "out"
    stdin = "".join(json.dumps({"video": str(tmp_path / "a.mp4"), "mask": str(tmp_path / "a.png"), "id": i}) + "\n" for i in ("../escaped", "/abs/escaped"))
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert run(["batch", "-", "-q", QUESTION, "-o", str(out), *TINY]) == 1  # both items failed, nothing ran
    assert set(_errors(out)) == {"line 1", "line 2"} and "relative name" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "a.png", "m.jsonl", "out"] and not Path("/abs").exists()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "sub").symlink_to(elsewhere)
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"video": str(tmp_path / "a.mp4"), "mask": str(tmp_path / "a.png"), "id": "sub/x"})))
    assert run(["batch", "-", "-q", QUESTION, "-o", str(out), *TINY]) == 2
    err = capsys.readouterr().err
    assert "outside -o" in err and str(elsewhere / "x.json") in err and list(elsewhere.iterdir()) == []


def test_videos_of_one_stem_get_their_own_ids(tmp_path):
    for name in ("a.mp4", "a.mkv", "a.mp4.mov", "b.mp4", "sub/a.mp4"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "a.png").write_bytes(b"")
    tasks, problems = tasks_from_folder(tmp_path, recursive=True)
    ids = [t.id for t in tasks + problems]
    assert sorted(ids) == ["a.mkv", "a.mp4", "a.mp4.mov", "b", "sub/a"] and len(set(ids)) == len(ids)
    assert {t.id: t.video.name for t in tasks}["a.mkv"] == "a.mkv"


def _answered(out: Path, task_id: str) -> Path:
    path = out / f"{task_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"answer": "from an earlier run"}))
    return path


def test_resume_skips_only_outputs_of_the_same_request(tmp_path):
    from garvid.batch.runner import BatchRun, plan_batch
    from garvid.batch.sink import BatchSink
    from garvid.errors import GarvidError
    from garvid.options import AnswerOptions, KeyframeOptions, ModelOptions, TrackingOptions

    task = BatchTask("a", tmp_path / "a.mp4", tmp_path / "a.png")
    out = tmp_path / "out"
    q1 = BatchRun(AnswerOptions(model=ModelOptions("tiny-random")), question="Q1")

    def plan(run: BatchRun, overwrite: bool = False):
        with BatchSink(out, "json", overwrite=overwrite) as sink:
            return plan_batch([task], [], run, sink), sink.summary

    def changed(**groups) -> BatchRun:
        return replace(q1, options=replace(q1.options, **groups))

    first, _ = plan(q1)
    with BatchSink(out, "json") as sink:  # as if answered: the output, then its request
        sink.done(task, first.pending[0][1], type("Answer", (), {"to_json": lambda self: {}})())
    _answered(out, "a")
    again, summary = plan(q1)
    assert again.pending == [] and summary.skipped == 1  # the very same request: skipped
    for other, needle in (
        (replace(q1, question="Q2"), "question"), (replace(q1, describe=True), "question"),
        (changed(model=ModelOptions("gar-1b")), "model"), (changed(keyframes=KeyframeOptions(frames=4, window=2.0)), "frames, window"),
    ):  # fmt: skip
        with pytest.raises(GarvidError, match=f"another request \\('a': {needle} changed\\): pass --overwrite"):
            plan(other)
        assert len(plan(other, overwrite=True)[0].pending) == 1
    where = changed(model=ModelOptions("tiny-random", device="cuda"), tracking=TrackingOptions(cache_dir=tmp_path))
    assert len(plan(where)[0].pending) == 0  # where it runs is not what it asks
    (out / ".garvid-batch.jsonl").unlink()  # an output nobody recorded (an older garvid): not trusted either
    with pytest.raises(GarvidError, match="'a': its request was not recorded"):
        plan(q1)


def test_a_second_run_on_one_folder_is_refused_and_keeps_the_first_runs_errors(tmp_path, capsys):
    from garvid.batch.sink import BatchSink

    out = tmp_path / "out"
    (tmp_path / "a.mp4").write_bytes(b"never read")
    (tmp_path / "a.png").write_bytes(b"never read")
    with BatchSink(out, "json") as first:
        first.failed(BatchTask("x", tmp_path / "x.mp4", tmp_path / "x.png"), "track", "boom")
        assert run(["batch", str(tmp_path), "-q", QUESTION, "-o", str(out), *TINY]) == 2
        assert "another garvid batch is writing to" in capsys.readouterr().err
        assert set(_errors(out)) == {"x"}
    with BatchSink(out, "json"):
        pass  # free again once the first run ends


def test_help_names_the_ray_extra(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert run(["batch", "--help"]) == 0
    assert "pip install 'garvid[ray]'" in capsys.readouterr().out  # rich markup would eat an unescaped [ray]


def test_no_output_overwrites_a_file_any_row_names(tmp_path, capsys):
    """An item's output may not overwrite its own tracks, nor a file another row names (that row
    being a valid item or not): every file a row names is an input of the run."""
    for name in ("sm.mp4", "m.png", "t_in.json", "other.json"):
        (tmp_path / name).write_bytes(b"kept")
    manifest = tmp_path / "m.jsonl"
    own = {"video": "sm.mp4", "tracks": "t_in.json", "id": "t_in"}
    manifest.write_text(json.dumps(own) + "\n")
    assert run(["batch", str(manifest), "-q", QUESTION, "-o", str(tmp_path), *TINY]) == 2
    assert "t_in.json is an input of this run" in capsys.readouterr().err
    bad_row = {"video": "sm.mp4", "tracks": "other.json", "id": "x", "bogus": 1}  # not a valid item, its files still inputs
    manifest.write_text(json.dumps(bad_row) + "\n" + json.dumps({"video": "sm.mp4", "mask": "m.png", "id": "other"}) + "\n")
    assert run(["batch", str(manifest), "-q", QUESTION, "-o", str(tmp_path), *TINY]) == 2
    assert "other.json is an input of this run" in capsys.readouterr().err
    assert all((tmp_path / name).read_bytes() == b"kept" for name in ("sm.mp4", "m.png", "t_in.json", "other.json"))


@pytest.mark.slow
def test_rows_that_are_not_valid_unicode_fail_alone_with_an_errors_file(tmp_path, capsys):
    """A surrogate (a JSON \\udcff escape) or bytes that are not UTF-8 in a row fail that row alone,
    recorded in errors.jsonl; the run does not die before its first item."""
    (tmp_path / "a.mp4").write_bytes(b"")
    (tmp_path / "a.png").write_bytes(b"")
    manifest = tmp_path / "m.jsonl"
    good = json.dumps({"video": "a.mp4", "id": "good"}).encode()
    escaped = b'{"video": "a.mp4", "id": "esc", "question": "why \\udcff?"}'
    raw = b'{"video": "a.mp4", "id": "raw", "question": "why \xff\xfe?"}'
    manifest.write_bytes(b"\n".join((good, escaped, raw, b"b\xff.mp4")) + b"\n")
    tasks, problems = tasks_from_manifest(manifest)
    assert [t.id for t in tasks] == ["good"] and [p.id for p in problems] == ["line 2", "line 3", "line 4"]
    assert "line 2: field 'question' holds '\\udcff', which is not valid Unicode text" in problems[0].reason
    assert "field 'question' holds '\\udcff\\udcfe'" in problems[1].reason and "field 'video'" in problems[2].reason

    csv_manifest = tmp_path / "m.csv"
    csv_manifest.write_bytes(b"video,question,id\na.mp4,ok,c1\na.mp4,bad \xff,c2\n")
    tasks, problems = tasks_from_manifest(csv_manifest)
    assert [t.id for t in tasks] == ["c1"] and [p.id for p in problems] == ["row 3"]

    manifest.write_bytes(b"\n".join((escaped, raw, b"b\xff.mp4")) + b"\n")
    out = tmp_path / "out"
    assert run(["batch", str(manifest), "-q", QUESTION, "-o", str(out), *TINY]) == 1  # every item failed, nothing ran
    assert set(_errors(out)) == {"line 1", "line 2", "line 3"}
    assert _errors(out)["line 3"]["video"] == "b\\udcff.mp4"  # escaped: errors.jsonl is valid UTF-8
    assert "Traceback" not in capsys.readouterr().err


def test_stopping_while_tracking_keeps_the_item_in_flight_for_answering(monkeypatch):
    """Ctrl-C during the tracking stage: the item being tracked is the one in flight, so it alone
    goes on to be answered; those tracked before wait for a rerun (their tracks are cached)."""
    from garvid.batch import runner
    from garvid.options import AnswerOptions
    from garvid.qa.reporting import Reporter

    calls: list[str] = []
    monkeypatch.setattr("garvid.qa.video_answering.track_ahead", lambda request, context: calls.append(request))
    items = [(BatchTask(f"i{n}", Path(f"{n}.mp4"), None), f"request {n}") for n in range(4)]
    kept = runner._track_all(items, AnswerOptions(), None, Reporter(), should_stop=lambda: len(calls) >= 2)
    assert calls == ["request 0", "request 1"] and kept == [items[1]]


@pytest.mark.slow
def test_sigterm_removes_the_runs_temporary_folder(folder, tmp_path):
    import os

    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    args = [sys.executable, "-m", "garvid_cli", "batch", str(folder), "-r", "--question", QUESTION, "-o", str(tmp_path / "out"), *TINY]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(scratch_root)})
    deadline = time.monotonic() + 600
    while not list(scratch_root.glob("garvid-batch-*")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(scratch_root.glob("garvid-batch-*"))  # the run's scratch folder exists
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 143, err
    assert list(scratch_root.glob("garvid-batch-*")) == [] and "Traceback" not in err


def test_input_problems_name_their_own_reason(tmp_path, capsys, monkeypatch):
    (tmp_path / "a.mp4").write_bytes(b"")
    (tmp_path / "a.png").write_bytes(b"")
    lines = ["42", '"a string"', "null", json.dumps({"video": "a.mp4", "start": "abc"}), json.dumps({"video": "a.mp4", "mask_frame": "x"})]
    lines += [json.dumps({"video": "a.mp4", "id": f"a{c}b"}) for c in ("\n", "\x1b", "\x00")]
    tasks, problems = tasks_from_lines(lines, tmp_path)
    reasons = [p.reason for p in problems]
    assert tasks == [] and len(reasons) == 8
    assert "must be one object" in reasons[0] and "not a number (a video so named: write ./42)" in reasons[0]
    assert "not a string" in reasons[1] and "not null" in reasons[2]
    assert "'start' must be seconds, not 'abc'" in reasons[3] and "'mask_frame' must be a frame number, not 'x'" in reasons[4]
    assert all("holds the control character" in r for r in reasons[5:]), reasons[5:]
    (tmp_path / "42").write_bytes(b"")  # a video with such a name is still reachable
    assert [t.video.name for t in tasks_from_lines(["./42"], tmp_path, masks_optional=True)[0]] == ["42"]

    manifest = tmp_path / "empty.csv"
    manifest.write_text("video,mask\n")
    assert run(["batch", str(manifest), "-q", QUESTION, *TINY]) == 2
    assert "lists no items" in capsys.readouterr().err

    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"mask": "a.png"}) + "\n"))
    assert run(["batch", "-", "-q", QUESTION, "-o", str(tmp_path / "out"), *TINY]) == 1
    warned = [line for line in capsys.readouterr().err.splitlines() if "needs a 'video' field" in line]
    assert warned == ["garvid: warning: stdin line 1: needs a 'video' field"]  # not "line 1: stdin line 1: ..."
