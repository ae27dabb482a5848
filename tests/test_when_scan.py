"""The scan and its coarse-to-fine refinement on synthetic step curves (no model)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from garvid.qa.when_scan import Scored, halves, scan

WINDOW, RESOLUTION = 2.0, 0.25


def coarse_windows(start: float, end: float, seconds: float) -> list[tuple[float, float]]:
    cuts = [start + i * seconds for i in range(math.ceil((end - start) / seconds - 1e-9))] + [end]
    return list(zip(cuts, cuts[1:]))


def step_scorer(truth: list[tuple[float, float]], calls: list[int] | None = None, hidden: tuple[float, float] | None = None):
    """Scores a window by the share of it the statement holds in (a step curve seen through windows)."""

    def score(windows: list[tuple[float, float]]) -> list[Scored]:
        if calls is not None:
            calls.append(len(windows))
        out = []
        for start, end in windows:
            if hidden is not None and start >= hidden[0] and end <= hidden[1]:
                out.append(Scored(start, end, None, "not visible"))
                continue
            overlap = sum(max(0.0, min(end, b) - max(start, a)) for a, b in truth)
            out.append(Scored(start, end, overlap / (end - start), keyframes=(int(start * 10),)))
        return out

    return score


@st.composite
def step_curves(draw):
    """A span and true intervals at least two coarse windows long, apart by at least as much."""
    span_end = draw(st.floats(20, 120)).__round__(2)
    times, at = [], draw(st.floats(0, 6))
    while True:
        at += draw(st.floats(2 * WINDOW + 0.1, 20))
        if at > span_end - 2 * WINDOW - 0.1:
            break
        times.append(round(at, 3))
    if len(times) % 2 and draw(st.booleans()):
        times.append(span_end)  # an interval running to the end of the span
    if len(times) % 2:
        times.pop()
    return span_end, list(zip(times[::2], times[1::2]))


@given(step_curves())
def test_boundaries_found_within_the_resolution(curve):
    span_end, truth = curve
    result = scan(coarse_windows(0.0, span_end, WINDOW), RESOLUTION, 0.5, step_scorer(truth))
    assert len(result.intervals) == len(truth)
    for found, (start, end) in zip(result.intervals, truth):
        assert abs(found.start - start) <= RESOLUTION
        assert abs(found.end - end) <= RESOLUTION
    edges = [t for i in result.intervals for t in (i.start, i.end)]
    assert edges == sorted(edges) and all(a < b for a, b in zip(edges[::2], edges[1::2]))  # sorted, disjoint, not empty
    assert all(0.0 <= t <= span_end for t in edges)  # inside the span
    for interval in result.intervals:
        assert 0.5 <= interval.mean <= interval.peak <= 1.0
    starts = [(s.start, -(s.end - s.start)) for s in result.curve]
    assert starts == sorted(starts)


@given(step_curves())
def test_cost_grows_with_boundaries_not_length(curve):
    span_end, truth = curve
    calls: list[int] = []
    scan(coarse_windows(0.0, span_end, WINDOW), RESOLUTION, 0.5, step_scorer(truth, calls))
    coarse = len(coarse_windows(0.0, span_end, WINDOW))
    boundaries = sum(1 for a, b in truth for t in (a, b) if t < span_end)
    levels = math.ceil(math.log2(WINDOW / RESOLUTION))
    assert sum(calls) <= coarse + 4 * levels * boundaries
    assert len(calls) <= 1 + levels  # every boundary halved in the same round: one batch per halving


def test_the_frames_that_decided_a_boundary_are_the_finest_pair():
    result = scan(coarse_windows(0.0, 20.0, WINDOW), RESOLUTION, 0.5, step_scorer([(5.1, 13.0)]))
    (interval,) = result.intervals
    assert interval.opens is not None and interval.closes is not None
    assert interval.opens.before.end - interval.opens.before.start <= RESOLUTION
    assert not interval.opens.before.holds(0.5) and interval.opens.after.holds(0.5)
    assert interval.opens.before.keyframes


def test_windows_where_an_object_is_hidden_count_as_not_holding():
    truth = [(0.0, 20.0)]  # it would hold everywhere, but the object is gone from 8 s to 12 s
    result = scan(coarse_windows(0.0, 20.0, WINDOW), RESOLUTION, 0.5, step_scorer(truth, hidden=(8.0, 12.0)))
    assert [(i.start, i.end) for i in result.intervals] == [(0.0, 8.0), (12.0, 20.0)]
    assert [s.state for s in result.curve if s.start == 8.0 and s.end == 10.0] == ["not visible"]


def test_no_interval_and_everything():
    assert scan(coarse_windows(0.0, 10.0, WINDOW), RESOLUTION, 0.5, step_scorer([])).intervals == []
    (everything,) = scan(coarse_windows(0.0, 10.0, WINDOW), RESOLUTION, 0.5, step_scorer([(0.0, 10.0)])).intervals
    assert (everything.start, everything.end, everything.opens, everything.closes) == (0.0, 10.0, None, None)


def test_windows_without_frames_are_not_split_and_left_out():
    def score(windows):
        return [Scored(a, b, None, "no frames") if b - a < 1 else Scored(a, b, float(a >= 4.0)) for a, b in windows]

    (interval,) = scan(coarse_windows(0.0, 8.0, WINDOW), RESOLUTION, 0.5, score).intervals
    assert interval.start == 4.0  # the 1 s halves decided it; their 0.5 s halves had no frames


def test_halves_and_bad_scorers():
    assert halves(1.0, 2.0) == [(1.0, 1.5), (1.5, 2.0)]
    with pytest.raises(ValueError):
        scan([(0.0, 1.0)], RESOLUTION, 0.5, lambda windows: [])
