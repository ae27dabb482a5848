"""Property-based checks of every parser of user input: whatever is typed or read, the
parser returns a valid result or raises a GarvidError whose message is one line.

The strategies double as a list of what users can hand garvid: questions and object
references, boxes and points, spans, windows and strides, tracks JSON and protocol files.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from garvid.errors import GarvidError
from garvid.gar.prompt import plan_question
from garvid.media.source import VideoInfo
from garvid.qa.keyframes import frame_span, split_windows
from garvid.qa.protocol import load_protocol
from garvid.regions.masks import encode_rle
from garvid.regions.prompts import parse_box, parse_point
from garvid.tracking import ObjectObservation, Tracks
from garvid.tracking.request import parse_stride

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
    assert value is None and stride == "auto" or value is None or value >= 1


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
@given(edits=st.lists(st.tuples(st.sampled_from(TRACK_PLACES[1:]), json_values | st.just("<delete>")), min_size=1, max_size=3))
def test_tracks_json(edits: list[tuple[tuple, Any]]) -> None:
    data = copy.deepcopy(VALID_TRACKS)
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
    tracks = accepted_or_one_line(lambda: Tracks.from_json(json.loads(json.dumps(data))))
    if tracks is not None:
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
