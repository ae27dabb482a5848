"""Analysed span, windows, keyframe choice and the prompt-size fit."""

from __future__ import annotations

import numpy as np
import pytest

from garvid.errors import GarvidError
from garvid.qa.keyframes import (
    Window,
    fit_keyframes,
    frame_span,
    join_frameless_windows,
    pick_uniform,
    select_keyframes,
    split_windows,
)

FPS = 30000 / 1001
TIMES = np.arange(300) / FPS  # a 10 s NTSC clip
DURATION = 300 / FPS


def test_whole_clip_span():
    span = frame_span(TIMES, DURATION, None, None)
    assert (span.first, span.stop, span.start) == (0, 300, 0.0)
    assert span.end == pytest.approx(DURATION)


def test_span_from_start_and_end_seconds():
    span = frame_span(TIMES, DURATION, 2.0, 4.0)
    assert TIMES[span.first] >= 2.0 > TIMES[span.first - 1]
    assert TIMES[span.stop - 1] < 4.0 <= TIMES[span.stop]
    assert frame_span(TIMES, DURATION, 5.0, 99.0).stop == 300  # an end past the clip is clipped


@pytest.mark.parametrize(
    ("start", "end", "needle"),
    [(-1.0, None, "negative"), (10.5, None, "not before the end"), (4.0, 3.0, "must come after"), (3.0, 3.0, "must come after")],
)
def test_bad_spans(start, end, needle):
    with pytest.raises(GarvidError, match=needle):
        frame_span(TIMES, DURATION, start, end)


def test_windows_of_2_5_seconds_cover_10_seconds_in_4():
    span = frame_span(TIMES, DURATION, None, None)
    windows = split_windows(span, TIMES, 2.5)
    assert [(w.start, w.end) for w in windows[:3]] == [(0.0, 2.5), (2.5, 5.0), (5.0, 7.5)]
    assert len(windows) == 4 and windows[-1].end == pytest.approx(DURATION)
    assert windows[0].first == 0 and windows[-1].stop == 300
    assert all(a.stop == b.first for a, b in zip(windows, windows[1:]))  # every frame in exactly one window


def test_no_window_is_the_span_and_bad_window_fails():
    span = frame_span(TIMES, DURATION, 1.0, 3.0)
    assert split_windows(span, TIMES, None) == [span]
    for seconds, needle in ((0.0, "at least 0.1 s"), (-1.0, "at least 0.1 s"), (float("nan"), "finite"), (float("inf"), "finite")):
        with pytest.raises(GarvidError, match=needle):
            split_windows(span, TIMES, seconds)


def test_pick_uniform_takes_centres_and_keeps_short_lists():
    assert pick_uniform(list(range(0, 100, 10)), 5) == [10, 30, 50, 70, 90]
    assert pick_uniform([3, 7], 8) == [3, 7]
    with pytest.raises(GarvidError):
        pick_uniform([1, 2], 0)


def test_uniform_keyframes_are_tracked_frames_in_the_window():
    tracked = list(range(0, 300, 10))
    window = Window(start=2.5, end=5.0, first=75, stop=150)
    keyframes = select_keyframes(tracked, window, 4, "uniform")
    assert len(keyframes) == 4 and set(keyframes) <= set(tracked)
    assert all(75 <= f < 150 for f in keyframes)


def test_visible_keyframes_spread_over_visible_frames_only():
    tracked = list(range(0, 300, 10))
    span = Window(0.0, DURATION, 0, 300)
    visible = list(range(200, 300, 10))
    keyframes = select_keyframes(tracked, span, 4, "visible", visible)
    assert all(f >= 200 for f in keyframes) and len(keyframes) == 4
    assert select_keyframes(tracked, span, 4, "visible", []) == select_keyframes(tracked, span, 4, "uniform")
    with pytest.raises(GarvidError, match="strategy"):
        select_keyframes(tracked, span, 4, "random")


def test_fit_keyframes_reduces_to_the_budget():
    def length(k: int) -> int:
        return 100 + 300 * k

    assert fit_keyframes(length, 8, 10_000) == 8
    assert fit_keyframes(length, 8, 1_000) == 3  # 100 + 3 * 300 = 1000
    assert fit_keyframes(length, 8, 999) == 2
    with pytest.raises(GarvidError, match="even one keyframe"):
        fit_keyframes(length, 8, 300)


def test_frameless_windows_join_a_neighbour_and_none_is_an_error():
    windows = [Window(float(i), float(i + 1), 10 * i, 10 * (i + 1)) for i in range(5)]  # frames 0..49
    joined = join_frameless_windows(windows, [12, 25, 26, 47])  # windows 0 and 3 hold none
    assert [(w.start, w.end, w.first, w.stop) for w in joined] == [(0.0, 2.0, 0, 20), (2.0, 4.0, 20, 40), (4.0, 5.0, 40, 50)]
    assert join_frameless_windows(windows, [0, 10, 20, 30, 40]) == windows
    with pytest.raises(GarvidError, match="no tracked frame falls between 0 s and 5 s"):
        join_frameless_windows(windows, [55])
