"""Property-based checks of every parser of user input: whatever is typed or read, the
parser returns a valid result or raises a GarvidError whose message is one line (and a
batch input's problems are one line each).

The strategies double as a list of what users can hand garvid: questions and object
references, boxes and points, spans, windows and strides, tracks JSON, protocol files,
batch manifests (CSV, JSONL) and stdin lines, and benchmark items.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from garvid.errors import GarvidError
from garvid.gar.prompt import plan_question
from garvid.media.source import VideoInfo
from garvid.qa.keyframes import frame_span, split_windows
from garvid.qa.protocol import load_protocol
from garvid.regions.masks import encode_rle
from garvid.regions.prompts import parse_box, parse_point
from garvid.tracking import ObjectObservation, Tracks
from garvid.options import parse_stride

CASES = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SIZE = (64, 48)
TIMES = np.arange(30) / 10.0


def accepted_or_one_line(parse: Callable[[], Any]) -> Any:
    """Run a parser: a result, or None after checking its GarvidError is one non-empty line."""
    try:
        return parse()
    except GarvidError as error:
        message = str(error)
        assert message.strip() and "\n" not in message and "\r" not in message, repr(message)
        return None


numbers = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "nan", "inf", "-0", "1e400", "0x10", "1_000", "１２", "½"]),
)
any_text = st.text(max_size=40)
#: Text as bytes that are not UTF-8 reach Python (surrogateescape: argv, stdin, file names) or a
#: JSON \\udcff escape gives it: lone surrogates among ordinary characters.
invalid_text = st.tuples(st.text(max_size=6), st.sampled_from([chr(c) for c in range(0xDC80, 0xDD00)]), st.text(max_size=6)).map("".join)


def valid_unicode(value: Any) -> bool:
    """Whether ``value`` (any JSON-like value, a task, a path) writes as UTF-8."""
    try:
        json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@CASES
@given(question=st.one_of(any_text, st.lists(st.sampled_from(
    ["object", "obj", "Object", "#", "1", "2", "7", "0", " ", ".", "<Prompt0>", "<Prompt9>", "<NO_Prompt>", "<|eot_id|>", "objects", "\n", "?"]
)).map("".join)), objects=st.lists(st.integers(-2, 8), min_size=0, max_size=6, unique=True))
def test_questions_and_object_references(question: str, objects: list[int]) -> None:
    plan = accepted_or_one_line(lambda: plan_question(objects, question))
    if plan is not None:
        assert plan.slot_objects and set(plan.slot_objects.values()) <= set(objects)
        assert all(slot + 1 == obj for slot, obj in plan.slot_objects.items())


@CASES
@given(parts=st.lists(numbers, min_size=0, max_size=6), separator=st.sampled_from([",", ", ", ";", " "]))
def test_boxes_and_points(parts: list[str], separator: str) -> None:
    text = separator.join(parts)
    box = accepted_or_one_line(lambda: parse_box(text, SIZE))
    if box is not None:
        x1, y1, x2, y2 = box
        assert 0 <= x1 < x2 <= SIZE[0] and 0 <= y1 < y2 <= SIZE[1]
    point = accepted_or_one_line(lambda: parse_point(text, SIZE))
    if point is not None:
        assert 0 <= point[0] < SIZE[0] and 0 <= point[1] < SIZE[1]


floats = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.floats(-1, 4))


@CASES
@given(start=floats, end=floats, window=floats)
def test_spans_and_windows(start: float | None, end: float | None, window: float | None) -> None:
    span = accepted_or_one_line(lambda: frame_span(TIMES, 3.0, start, end))
    if span is None:
        return
    assert 0 <= span.first < span.stop <= len(TIMES)
    windows = accepted_or_one_line(lambda: split_windows(span, TIMES, window))
    if windows is not None:
        assert windows and windows[0].first >= span.first and windows[-1].stop <= span.stop
        assert all(w.first < w.stop and math.isfinite(w.end) for w in windows)
        assert all(a.stop <= b.first for a, b in zip(windows, windows[1:]))


@CASES
@given(stride=st.one_of(any_text, numbers))
def test_strides(stride: str) -> None:
    value = accepted_or_one_line(lambda: parse_stride(stride))
    assert value is None or (value == "auto" and str(stride).strip() == "auto") or (isinstance(value, int) and value >= 1)


def _valid_tracks_json() -> dict[str, Any]:
    info = VideoInfo(path="clip.mp4", num_frames=10, fps=10.0, width=8, height=6, duration=1.0, rotation=0)
    mask = np.zeros((6, 8), dtype=bool)
    mask[1:3, 2:5] = True
    seen = ObjectObservation(bbox=(2, 1, 4, 2), area=6, score=0.9, rle=encode_rle(mask))
    gone = ObjectObservation(bbox=None, area=0, score=0.1, rle=encode_rle(np.zeros((6, 8), dtype=bool)))
    tracks = Tracks(info, [1, 2], [0, 5], [0.0, 0.5], {1: [seen, gone], 2: [gone, seen]}, "tiny-random", 5, "cpu", 0)
    return tracks.to_json()


VALID_TRACKS = _valid_tracks_json()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 12) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON value, as a key path."""
    places = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            places += _paths(value, prefix + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            places += _paths(value, prefix + (index,))
    return places


TRACK_PLACES = _paths(VALID_TRACKS)


@settings(max_examples=600, deadline=None)
@example(edits=[(("objects", 0, "frames", 0, "mask", "counts"), "abc")])  # pycocotools raises on this
@example(edits=[(("objects", 0, "frames", 0, "mask", "counts"), "")])  # and fills this from stale memory
@given(edits=st.lists(st.tuples(st.sampled_from(TRACK_PLACES[1:]), json_values | invalid_text | st.just("<delete>")), min_size=1, max_size=3))
def test_tracks_json(edits: list[tuple[tuple, Any]]) -> None:
    data = _edited(VALID_TRACKS, edits)
    tracks = accepted_or_one_line(lambda: Tracks.from_json(data))
    if tracks is not None:
        assert valid_unicode(tracks.to_json())  # whatever it holds can be written
        for object_id in tracks.object_ids:
            for frame in tracks.frames:
                assert tracks.mask(object_id, frame).shape == (tracks.video.height, tracks.video.width)


SHIPPED_PROTOCOL = (Path(__file__).resolve().parents[1] / "configs" / "protocols" / "temporal-v1.toml").read_text()
PROTOCOL_LINES = SHIPPED_PROTOCOL.splitlines()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    line=st.integers(0, len(PROTOCOL_LINES) - 1),
    replacement=st.one_of(
        any_text,
        st.sampled_from(['frames = 0', 'frames = "8"', 'tiles = "x"', 'question = "{question"', 'intro = "<|eot_id|>{objects}"', "[text]", "= 1", 'describe = "{prompt}{prompt:>9999999999}"']),
    ),
)
def test_protocol_files(tmp_path_factory, line: int, replacement: str) -> None:
    lines = list(PROTOCOL_LINES)
    lines[line] = replacement
    path = tmp_path_factory.mktemp("protocol") / "p.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    accepted_or_one_line(lambda: load_protocol(path))


manifest_cells = st.one_of(
    st.text(max_size=12),
    invalid_text,
    st.sampled_from(["a.mp4", "../a.mp4", "/abs/a.mp4", "a.png", "-1", "1e9", "nan", "", " ", "..", "x/../../y"]),
)
manifest_rows = st.dictionaries(
    st.sampled_from(["video", "mask", "id", "question", "mask_frame", "start", "end", "bogus"]) | st.text(max_size=6),
    manifest_cells | json_values,
    max_size=6,
)


def _one_line_problems(problems: list) -> None:
    for problem in problems:
        assert problem.reason.strip() and "\n" not in problem.reason and "\r" not in problem.reason, repr(problem.reason)


@CASES
@given(rows=st.lists(manifest_rows, max_size=5), kind=st.sampled_from(["csv", "jsonl"]), bom=st.booleans())
def test_manifests(tmp_path_factory, rows: list[dict[str, Any]], kind: str, bom: bool) -> None:
    import csv
    import io

    from garvid.batch.tasks import tasks_from_manifest

    folder = tmp_path_factory.mktemp("manifest")
    if kind == "csv":
        columns = sorted({key for row in rows for key in row} | {"video"})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: v if isinstance(v, str) else json.dumps(v) for k, v in row.items()} for row in rows)
        text = buffer.getvalue()
    else:
        text = "".join(json.dumps(row) + "\n" for row in rows)
    path = folder / f"m.{kind}"
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8", errors="surrogateescape")  # raw bytes in a CSV
    result = accepted_or_one_line(lambda: tasks_from_manifest(path))
    if result is not None:
        tasks, problems = result
        _one_line_problems(problems)
        assert all(valid_unicode(task.__dict__) for task in tasks) and all(valid_unicode(p.__dict__) for p in problems)
        assert len({task.id for task in tasks}) == len(tasks)
        assert all(not Path(task.id).is_absolute() and ".." not in Path(task.id).parts for task in tasks)


@CASES
@given(lines=st.lists(st.one_of(any_text, invalid_text, manifest_rows.map(json.dumps), st.lists(json_values).map(json.dumps)), max_size=6))
def test_stdin_lines(tmp_path_factory, lines: list[str]) -> None:
    from garvid.batch.tasks import tasks_from_lines

    tasks, problems = tasks_from_lines(lines, tmp_path_factory.mktemp("stdin"))
    _one_line_problems(problems)
    assert all(valid_unicode(task.__dict__) for task in tasks) and all(valid_unicode(p.__dict__) for p in problems)
    assert all(not Path(task.id).is_absolute() and ".." not in Path(task.id).parts for task in tasks)


VIDEOREFER_ITEM = {
    "id": 0,
    "video": "clip",
    "Question": "What is <object0><region> doing?",
    "options": ["(A) x", "(B) y"],
    "Answer": "(A) x",
    "type": "t",
    "frame_idx": "0",
    "annotation": [{"0": {"segmentation": encode_rle(np.ones((6, 8), dtype=bool))}}],
}
ITEM_PLACES = _paths(VIDEOREFER_ITEM)


@settings(max_examples=500, deadline=None)
@given(edits=st.lists(st.tuples(st.sampled_from(ITEM_PLACES[1:]), json_values | st.just("<delete>")), min_size=1, max_size=3))
def test_eval_items(edits: list[tuple[tuple, Any]]) -> None:
    from garvid.eval.choices import item_options
    from garvid.eval.videorefer import object_masks

    item = _edited(VIDEOREFER_ITEM, edits)
    accepted_or_one_line(lambda: item_options(item, "options") if "options" in item else None)
    if "annotation" in item and "Question" in item:
        accepted_or_one_line(lambda: object_masks(item))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.sampled_from(ITEM_PLACES[1:]), invalid_text), min_size=1, max_size=3))
def test_eval_items_with_invalid_text_fail_alone(tmp_path_factory, edits: list[tuple[tuple, Any]]) -> None:
    from garvid.eval.choices import check_item_text, load_questions

    path = tmp_path_factory.mktemp("items") / "items.json"
    path.write_text(json.dumps([VIDEOREFER_ITEM, _edited(VIDEOREFER_ITEM, edits)]), encoding="utf-8")
    good, bad = load_questions(path, "VideoRefer-BenchQ", ["id"])
    check_item_text(good)
    assert valid_unicode(bad)  # its record can be written
    if not valid_unicode(_edited(VIDEOREFER_ITEM, edits)):
        assert accepted_or_one_line(lambda: check_item_text(bad)) is None


@settings(max_examples=100, deadline=None)
@given(argument=invalid_text, position=st.integers(0, 3))
def test_arguments_that_are_not_valid_unicode_are_refused_before_any_work(argument: str, position: int) -> None:
    import contextlib
    import io

    from garvid_cli.main import run

    argv = ["ask", "clip.mp4", "-q", "what?"]
    argv.insert(position + 1, argument)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert run(argv) == 2
    assert err.getvalue().startswith("garvid: error: argument") and err.getvalue().count("\n") == 1
    assert "not valid Unicode text" in err.getvalue()


def _edited(data: Any, edits: list[tuple[tuple, Any]]) -> Any:
    data = copy.deepcopy(data)
    for place, value in edits:
        parent = data
        try:
            for key in place[:-1]:
                parent = parent[key]
            if value == "<delete>":
                del parent[place[-1]]
            else:
                parent[place[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed this place
    return json.loads(json.dumps(data))


@pytest.mark.parametrize("message", ["two\nlines", "carriage\rreturn"])
def test_the_cli_prints_any_error_on_one_line(monkeypatch, capsys, message: str) -> None:
    """The last line of defence: a message with a line break still prints as one line."""
    from garvid_cli import main

    def fail(*args: Any, **kwargs: Any) -> None:
        raise GarvidError(message)

    monkeypatch.setattr(main, "app", fail)
    assert main.run(["ask"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("garvid: error: ")


def _special_file(kind: str, folder: Path) -> Path:
    import os

    path = folder / f"input-{kind}"
    if kind == "fifo":
        os.mkfifo(path)  # opening it would wait for a writer forever
    elif kind == "dev-zero-link":
        path.symlink_to("/dev/zero")  # reading it never ends
    elif kind == "folder":
        path.mkdir()
    else:  # a sparse file larger than any input garvid reads whole
        with open(path, "wb") as handle:
            handle.truncate((1 << 30) + 1)
    return path


def _readers() -> dict[str, Callable[[Path], Any]]:
    from garvid.batch.tasks import tasks_from_manifest
    from garvid.eval.choices import load_questions
    from garvid.tracking.given import read_tracks_file

    info = VideoInfo(path="clip.mp4", num_frames=10, fps=10.0, width=8, height=6, duration=1.0, rotation=0)
    return {
        "--tracks": lambda path: read_tracks_file(path, info, list(TIMES[:10])),
        "manifest": tasks_from_manifest,
        "annotations": lambda path: load_questions(path, "VideoRefer-BenchQ", ["id"]),
        "protocol": load_protocol,
    }


@pytest.mark.parametrize("reader", ["--tracks", "manifest", "annotations", "protocol"])
@pytest.mark.parametrize("kind", ["fifo", "dev-zero-link", "folder", "huge"])
def test_inputs_that_are_not_small_regular_files_are_refused_before_reading(tmp_path, reader: str, kind: str) -> None:
    """Every user-named small file (tracks, manifest, annotations, protocol) goes through one
    reader: a FIFO, a device (through a symlink), a folder or a file over the cap is refused in
    one line, without reading (reading /dev/zero ran out of memory; a FIFO never returns)."""
    path = _special_file(kind, tmp_path)
    with pytest.raises(GarvidError) as refused:
        _readers()[reader](path)
    message = str(refused.value)
    assert "\n" not in message and str(path) in message
    assert ("more than the" in message) if kind == "huge" else ("not a regular file" in message)
