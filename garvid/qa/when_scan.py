"""Where a statement holds: a coarse scan of scored windows, refined coarse to fine at each
boundary, and the intervals that result. Pure code over seconds; the scores come from a
callback (:mod:`garvid.qa.when_answering` asks GAR), so it is tested on synthetic curves.

The scan scores every coarse window. Where the thresholded state changes between two
neighbouring windows (a *crossing*), both are halved and the four halves scored; the
crossing among them nearest to the old one is followed down the same way until the windows
are no longer than the resolution. The boundary is where the last crossing pair meets. One
boundary costs at most four windows per halving, so the windows scored grow with the number
of boundaries and ``log2(window / resolution)``, not with the span divided by the
resolution; every boundary is halved in the same round, so a scan is ``1 + log2(window /
resolution)`` calls to the scorer, each one batch.

A window whose named objects are never visible is ``"not visible"``: the statement cannot
hold there, so it counts as below the threshold. A window with no frame to look at
(finer than the tracked frames) is ``"no frames"``: it is left out and not split further.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Sequence

State = Literal["scored", "not visible", "no frames"]


@dataclass(frozen=True)
class Scored:
    """One window's outcome: its score (``None`` unless ``state == "scored"``) and the frames it was scored on."""

    start: float
    end: float
    score: float | None
    state: State = "scored"
    keyframes: tuple[int, ...] = ()

    def holds(self, threshold: float) -> bool:
        return self.score is not None and self.score >= threshold


ScoreWindows = Callable[[list[tuple[float, float]]], list[Scored]]
"""Scores windows (``(start, end)`` seconds), one :class:`Scored` each in order: one call per round, so they batch."""


@dataclass(frozen=True)
class Boundary:
    """Where the state changes: the time, and the two neighbouring windows that decided it."""

    time: float
    before: Scored
    after: Scored


@dataclass(frozen=True)
class Interval:
    """A stretch where the statement holds, with the score of the windows centred in it."""

    start: float
    end: float
    peak: float
    mean: float
    opens: Boundary | None  # None: it starts with the span
    closes: Boundary | None  # None: it ends with the span


@dataclass
class WhenScan:
    """Every window scored (in time order, finest last among equal starts) and the intervals found."""

    curve: list[Scored]
    intervals: list[Interval]


def halves(start: float, end: float) -> list[tuple[float, float]]:
    middle = round((start + end) / 2, 6)
    return [(start, middle), (middle, end)]


def scan(
    coarse: Sequence[tuple[float, float]], resolution: float, threshold: float, score: ScoreWindows
) -> WhenScan:
    """Score ``coarse`` (consecutive windows), refine each crossing down to ``resolution`` seconds,
    and return the curve and the intervals where the score is at least ``threshold``."""
    if not coarse:
        raise ValueError("no windows to scan")
    scored: dict[tuple[float, float], Scored] = {}

    def rate(windows: list[tuple[float, float]]) -> list[Scored]:
        missing = list(dict.fromkeys(w for w in windows if w not in scored))
        if missing:
            results = score(missing)
            if len(results) != len(missing):
                raise ValueError(f"{len(missing)} windows asked for, {len(results)} scores given")
            scored.update(zip(missing, results))
        return [scored[w] for w in windows]

    level = _usable(rate(list(coarse)))
    if not level:
        raise ValueError("no coarse window has frames to score")
    edges = _refine(_crossings(level, threshold), resolution, rate, threshold)
    curve = sorted(scored.values(), key=lambda s: (s.start, -(s.end - s.start)))
    intervals = []
    for run in _holding_runs(level, threshold):
        opens = edges[(level[run[0] - 1], level[run[0]])] if run[0] > 0 else None
        closes = edges[(level[run[-1]], level[run[-1] + 1])] if run[-1] + 1 < len(level) else None
        start = opens.time if opens is not None else level[0].start
        end = closes.time if closes is not None else level[-1].end
        if end > start:
            intervals.append(_interval(start, end, opens, closes, curve))
    return WhenScan(curve, intervals)


def _usable(windows: list[Scored]) -> list[Scored]:
    return [w for w in windows if w.state != "no frames"]


def _crossings(windows: list[Scored], threshold: float) -> list[tuple[Scored, Scored]]:
    return [(a, b) for a, b in zip(windows, windows[1:]) if a.holds(threshold) != b.holds(threshold)]


def _holding_runs(windows: list[Scored], threshold: float) -> list[list[int]]:
    """Indices of each run of consecutive windows at or above ``threshold``."""
    runs: list[list[int]] = []
    for index, window in enumerate(windows):
        if window.holds(threshold):
            if runs and runs[-1][-1] == index - 1:
                runs[-1].append(index)
            else:
                runs.append([index])
    return runs


def _refine(
    crossings: list[tuple[Scored, Scored]], resolution: float, rate: Callable[[list[tuple[float, float]]], list[Scored]], threshold: float
) -> dict[tuple[Scored, Scored], Boundary]:
    """Follow every crossing down to ``resolution``, all of them a halving at a time (one call to
    ``rate`` per halving): halve both windows, keep the crossing among the halves nearest to it,
    and stop when nothing splits or the halves see no change. The boundary of each crossing."""
    pairs = {crossing: crossing for crossing in crossings}  # coarse crossing -> its finest pair so far
    active = list(crossings)
    while active:
        asked = [[*_split(pairs[c][0], resolution), *_split(pairs[c][1], resolution)] for c in active]
        rated = rate([window for windows in asked for window in windows])
        still = []
        for crossing, windows in zip(active, asked):
            finer, rated = _usable(rated[: len(windows)]), rated[len(windows) :]
            before, after = pairs[crossing]
            found = _crossings(finer, threshold)
            nearest = min(found, key=lambda p: abs(_meeting(*p) - _meeting(before, after))) if found else None
            if nearest is not None and nearest != (before, after):  # else the halves do not see it, or nothing splits
                pairs[crossing] = nearest
                still.append(crossing)
        active = still
    return {crossing: Boundary(_meeting(*pair), *pair) for crossing, pair in pairs.items()}


def _meeting(before: Scored, after: Scored) -> float:
    return round((before.end + after.start) / 2, 6)


def _split(window: Scored, resolution: float) -> list[tuple[float, float]]:
    if window.end - window.start <= resolution + 1e-9 or window.state == "no frames":
        return [(window.start, window.end)]
    return halves(window.start, window.end)


def _interval(start: float, end: float, opens: Boundary | None, closes: Boundary | None, curve: list[Scored]) -> Interval:
    """The interval with the peak and mean score of the windows centred in it (else overlapping it)."""
    inside = [s.score for s in curve if s.score is not None and start <= (s.start + s.end) / 2 < end]
    inside = inside or [s.score for s in curve if s.score is not None and s.start < end and s.end > start]
    return Interval(start, end, max(inside), sum(inside) / len(inside), opens, closes)
