"""A user's shot list read back and checked against the video: PySceneDetect's CSV scene list
(what ``garvid shots -o shots.csv`` and ``scenedetect list-scenes`` write) or JSON.

Both give each shot's start and end in seconds (the CSV's ``Start Time (seconds)`` and
``End Time (seconds)`` columns; in JSON, ``start`` and ``end`` of each item of a list, or of
the ``shots`` of what ``garvid shots --format json`` writes). Each time is taken to the frame
that starts nearest to it. Shots must be in order and must not overlap; a gap between two
shots becomes a shot of its own, so the shots always cover the video. Every problem is one
line naming the file and the row (CSV, counting the file's lines) or item (JSON).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from garvid.errors import GarvidError
from garvid.media.timing import frame_at, half_frame
from garvid.shots.shots import Shots

_CSV_COLUMNS = ("Start Time (seconds)", "End Time (seconds)")


def read_shots_file(path: Path, times: np.ndarray, duration: float) -> Shots:
    """The shots listed in ``path`` for a video whose frames start at ``times`` (seconds)
    and which lasts ``duration`` seconds; GarvidError naming the file and row on any problem."""
    path = Path(path)
    if not path.is_file():
        raise GarvidError(f"shot list {path}: no such file" if not path.exists() else f"shot list {path}: not a regular file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise GarvidError(f"shot list {path}: cannot read it ({error})") from None
    rows = _json_rows(path, text) if path.suffix.lower() == ".json" else _csv_rows(path, text)
    half = half_frame(times, duration)  # a time within half a frame of a frame's start is that frame
    bounds: set[int] = set()
    previous_end: float | None = None
    count = 0
    for where, start, end in rows:
        count += 1
        for name, value in (("start", start), ("end", end)):
            if value < 0:
                raise GarvidError(f"shot list {path}, {where}: the {name} time {value:g} s is negative")
            if value > duration + half:
                raise GarvidError(f"shot list {path}, {where}: the {name} time {value:g} s is beyond the video's end ({duration:g} s)")
        if end <= start:
            raise GarvidError(f"shot list {path}, {where}: the shot ends ({end:g} s) before it starts ({start:g} s)")
        if previous_end is not None and start < previous_end - half:
            raise GarvidError(
                f"shot list {path}, {where}: the shot starts ({start:g} s) before the previous one ends "
                f"({previous_end:g} s); shots must be in order and must not overlap"
            )
        first, last = frame_at(times, start, duration), frame_at(times, end, duration)
        if last <= first:
            raise GarvidError(f"shot list {path}, {where}: the shot ({start:g} s to {end:g} s) is shorter than one frame")
        bounds |= {first, last}
        previous_end = end
    if not count:
        raise GarvidError(f"shot list {path}: it lists no shot")
    return Shots.from_cuts((bound for bound in bounds if bound < len(times)), times, duration)


def _number(path: Path, where: str, name: str, value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not math.isfinite(seconds):
        raise GarvidError(f"shot list {path}, {where}: the {name} time {value!r} is not a number of seconds")
    return seconds


def _csv_rows(path: Path, text: str) -> Iterator[tuple[str, float, float]]:
    """``(where, start, end)`` of each scene row, after the header row (the cut list row before it is skipped)."""
    reader = csv.reader(text.splitlines())
    columns: list[int] | None = None
    for line, row in enumerate(reader, start=1):
        if columns is None:
            if row and row[0].strip() == "Scene Number":
                missing = [name for name in _CSV_COLUMNS if name not in row]
                if missing:
                    raise GarvidError(f"shot list {path}, row {line}: the header has no {' or '.join(repr(m) for m in missing)} column")
                columns = [row.index(name) for name in _CSV_COLUMNS]
            continue
        if not any(cell.strip() for cell in row):
            continue
        where = f"row {line}"
        if len(row) <= max(columns):
            raise GarvidError(f"shot list {path}, {where}: {len(row)} columns, the header has more")
        yield where, _number(path, where, "start", row[columns[0]]), _number(path, where, "end", row[columns[1]])
    if columns is None:
        raise GarvidError(f"shot list {path}: no 'Scene Number' header row; expected PySceneDetect's CSV scene list (or a .json file)")


def _json_rows(path: Path, text: str) -> Iterator[tuple[str, float, float]]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise GarvidError(f"shot list {path}: not valid JSON ({error})") from None
    if isinstance(data, dict) and "shots" in data:
        data = data["shots"]
    if not isinstance(data, list):
        raise GarvidError(f"shot list {path}: expected a JSON list of shots, each with start and end in seconds")
    for number, item in enumerate(data, start=1):
        where = f"item {number}"
        if not (isinstance(item, dict) and "start" in item and "end" in item):
            raise GarvidError(f"shot list {path}, {where}: expected an object with start and end in seconds")
        yield where, _number(path, where, "start", item["start"]), _number(path, where, "end", item["end"])
