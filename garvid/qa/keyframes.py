"""Which frames a question looks at: the analysed span, its windows, and their keyframes.

Keyframes are always tracked frames: the tracker follows the objects over a regular grid
of frames (plus the prompt frame), and keyframes are picked from that grid, so every
keyframe has a mask of every object and the tracker never runs on frames nobody uses.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from garvid.errors import GarvidError, OptionError
from garvid.options import STRATEGIES, Strategy, check_window


@dataclass(frozen=True)
class Window:
    """A stretch of the clip that gets its own answer: frames ``[first, end)``, times in seconds."""

    start: float
    end: float
    first: int
    stop: int  # one past the last frame

    def holds(self, frame: int) -> bool:
        return self.first <= frame < self.stop


def frame_span(timestamps: np.ndarray, duration: float, start: float | None, end: float | None) -> Window:
    """The frames whose timestamps fall in ``[start, end)`` seconds (defaults: the whole clip)."""
    start_time = 0.0 if start is None else float(start)
    end_time = duration if end is None else min(float(end), duration)
    if start_time < 0:
        raise OptionError("start", f"must not be negative, not {start_time:g}")
    if start_time >= duration:
        raise OptionError("start", f"({start_time:g} s) is not before the end of the {duration:g} s video")
    if end_time <= start_time:
        raise OptionError("end", f"({end_time:g} s) must come after the start ({start_time:g} s)")
    first = int(np.searchsorted(timestamps, start_time - 1e-6))
    stop = int(np.searchsorted(timestamps, end_time - 1e-6))
    if stop <= first:
        raise GarvidError(f"no frame starts between {start_time:g} s and {end_time:g} s")
    return Window(start=start_time, end=end_time, first=first, stop=stop)


def split_windows(span: Window, timestamps: np.ndarray, seconds: float | None) -> list[Window]:
    """``span`` cut into consecutive windows of ``seconds`` (the last may be shorter); one window without."""
    if seconds is None:
        return [span]
    check_window(seconds)
    last_frame_time = float(timestamps[span.stop - 1])
    starts = [span.start + i * seconds for i in range(math.ceil((span.end - span.start) / seconds))]
    starts = [start for start in starts if start <= last_frame_time + 1e-6]  # a tail with no frame joins the window before
    windows = []
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else span.end
        first = max(span.first, int(np.searchsorted(timestamps, start - 1e-6)))
        stop = min(span.stop, int(np.searchsorted(timestamps, end - 1e-6)))
        if stop > first:
            windows.append(Window(start=round(start, 6), end=round(end, 6), first=first, stop=stop))
    return windows


def join_frameless_windows(windows: Sequence[Window], tracked: Sequence[int]) -> list[Window]:
    """``windows`` with each one that holds no ``tracked`` frame joined to the window before
    it (a leading one to the window after), so every window has keyframes to answer from.

    A window can miss the tracked grid when it is shorter than the stride, or on a
    variable-frame-rate clip. ``tracked`` is ascending. GarvidError when no window holds one.
    """
    joined: list[Window] = []
    head: Window | None = None  # leading frameless windows, waiting for the first with frames
    for window in windows:
        index = bisect.bisect_left(tracked, window.first)
        if index < len(tracked) and tracked[index] < window.stop:
            joined.append(window if head is None else _joined(head, window))
            head = None
        elif joined:
            joined[-1] = _joined(joined[-1], window)
        else:
            head = window if head is None else _joined(head, window)
    if not joined:
        raise GarvidError(
            f"no tracked frame falls between {windows[0].start:g} s and {windows[-1].end:g} s: track more often (a smaller stride) or ask about a longer span"
        )
    return joined


def _joined(earlier: Window, later: Window) -> Window:
    return Window(start=earlier.start, end=later.end, first=earlier.first, stop=later.stop)


def pick_uniform(candidates: Sequence[int], count: int) -> list[int]:
    """``count`` of ``candidates`` spread evenly (the centre of each of ``count`` equal parts)."""
    if count < 1:
        raise GarvidError(f"the number of keyframes must be positive, got {count}")
    if len(candidates) <= count:
        return list(candidates)
    positions = ((np.arange(count) + 0.5) * len(candidates) / count).astype(int)
    return [candidates[p] for p in positions]


def select_keyframes(
    tracked: Sequence[int],
    window: Window,
    count: int,
    strategy: Strategy,
    visible: Sequence[int] = (),
) -> list[int]:
    """Keyframes of ``window``, chosen among the ``tracked`` frames.

    ``uniform`` spreads them over the window; ``visible`` spreads them over the tracked
    frames where an asked-about object is ``visible`` (falling back to uniform when none is).
    """
    if strategy not in STRATEGIES:
        raise GarvidError(f"unknown keyframe strategy {strategy!r}; use {' or '.join(STRATEGIES)}")
    in_window = [f for f in tracked if window.holds(f)]
    if strategy == "visible":
        seen = set(visible)
        shown = [f for f in in_window if f in seen]
        in_window = shown or in_window
    return pick_uniform(in_window, count)


def fit_keyframes(prompt_tokens: Callable[[int], int], wanted: int, budget: int) -> int:
    """The most keyframes, at most ``wanted``, whose prompt fits ``budget`` tokens.

    ``prompt_tokens(k)`` is the length of the prompt with ``k`` keyframes; every keyframe
    adds about the same number of tokens, so one estimate and a short walk down suffice.
    """
    if prompt_tokens(wanted) <= budget:
        return wanted
    one = prompt_tokens(1)
    if one > budget:
        raise GarvidError(
            f"even one keyframe needs {one} prompt tokens, more than the {budget} allowed: "
            "use a protocol with fewer tiles per frame or a model with a longer context"
        )
    per_frame = max(1, prompt_tokens(2) - one)
    count = min(wanted - 1, 1 + (budget - one) // per_frame)
    while count > 1 and prompt_tokens(count) > budget:
        count -= 1
    return count
