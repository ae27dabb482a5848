"""Batch items from a folder of videos, a manifest (CSV or JSONL) or JSONL lines on stdin.

Mask convention for folders and bare video paths: ``clip.mp4`` is paired with ``clip.png``
beside it, else ``masks/clip.png`` in its folder. Items that cannot be formed (a video
without a mask, a bad manifest row) become :class:`TaskProblem` records: reported, never
silently dropped.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from garvid.errors import GarvidError

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts"})
MANIFEST_FIELDS = ("video", "mask", "tracks", "question", "mask_frame", "start", "end", "id")


@dataclass(frozen=True)
class BatchTask:
    """One video to answer; ``id`` names its output (a relative path without suffix)."""

    id: str
    video: Path
    mask: Path | None  # None when ``tracks`` gives the objects
    question: str | None = None
    mask_frame: int = 0
    start: float | None = None
    end: float | None = None
    tracks: Path | None = None  # a tracks JSON used instead of tracking (``--tracks``)


@dataclass(frozen=True)
class TaskProblem:
    """An input item that is not a valid task, and why."""

    id: str
    video: str
    reason: str


def paired_mask(video: Path) -> Path | None:
    """The mask of ``video`` by the folder convention, if it exists."""
    for candidate in (video.with_suffix(".png"), video.parent / "masks" / f"{video.stem}.png"):
        if candidate.is_file():
            return candidate
    return None


def _missing_mask(task_id: str, video: Path) -> TaskProblem:
    return TaskProblem(task_id, str(video), f"no mask: expected {video.with_suffix('.png').name} or masks/{video.stem}.png beside it")


def tasks_from_folder(folder: Path, recursive: bool = False) -> tuple[list[BatchTask], list[TaskProblem]]:
    """Every video in ``folder`` (and below with ``recursive``), in path order."""
    if not folder.is_dir():
        raise GarvidError(f"{folder} is not a folder")
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    videos = sorted(p for p in pattern if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and "masks" not in p.relative_to(folder).parts[:-1])
    tasks, problems = [], []
    for video in videos:
        task_id = video.relative_to(folder).with_suffix("").as_posix()
        mask = paired_mask(video)
        if mask is None:
            problems.append(_missing_mask(task_id, video))
        else:
            tasks.append(BatchTask(task_id, video, mask))
    if not videos:
        raise GarvidError(f"no videos in {folder}{'' if recursive else ' (use -r for subfolders)'}")
    return tasks, problems


class _RowReader:
    """Turns manifest rows (dicts of strings or JSON values) into tasks, paths relative to ``base``."""

    def __init__(self, base: Path, source: str):
        self.base, self.source = base, source
        self.seen: set[str] = set()

    def read(self, row: Any, where: str) -> BatchTask | TaskProblem:
        if isinstance(row, str):
            row = {"video": row}
        if not isinstance(row, dict) or not row.get("video"):
            return TaskProblem(where, "", f"{self.source} {where}: needs a 'video' field")
        video = self.path(row["video"])
        task_id = str(row.get("id") or video.with_suffix("").name)
        unknown = sorted(set(row) - set(MANIFEST_FIELDS))
        try:
            if unknown:
                raise ValueError(f"unknown fields {unknown}; known: {', '.join(MANIFEST_FIELDS)}")
            if task_id in self.seen:
                raise ValueError(f"id {task_id!r} is used twice")
            tracks = self.path(row["tracks"]) if row.get("tracks") else None
            mask = self.path(row["mask"]) if row.get("mask") else (None if tracks else paired_mask(video))
            if mask is None and tracks is None:
                return _missing_mask(task_id, video)
            task = BatchTask(
                id=task_id,
                video=video,
                mask=mask,
                question=str(row["question"]) if row.get("question") not in (None, "") else None,
                mask_frame=int(row.get("mask_frame") or 0),
                start=_seconds(row.get("start")),
                end=_seconds(row.get("end")),
                tracks=tracks,
            )
        except (TypeError, ValueError) as error:
            return TaskProblem(task_id, str(video), f"{self.source} {where}: {error}")
        self.seen.add(task_id)
        return task

    def path(self, value: Any) -> Path:
        path = Path(str(value)).expanduser()
        return path if path.is_absolute() else self.base / path


def _seconds(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


def _split(items: Iterable[BatchTask | TaskProblem]) -> tuple[list[BatchTask], list[TaskProblem]]:
    items = list(items)
    return [i for i in items if isinstance(i, BatchTask)], [i for i in items if isinstance(i, TaskProblem)]


def tasks_from_manifest(path: Path) -> tuple[list[BatchTask], list[TaskProblem]]:
    """Tasks from a CSV (header row) or JSONL manifest; relative paths are relative to it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise GarvidError(f"cannot read manifest {path}: {error}") from None
    reader = _RowReader(path.parent, path.name)
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        if rows and "video" not in rows[0]:
            raise GarvidError(f"manifest {path} has no 'video' column (columns: {', '.join(rows[0])})")
        return _split(reader.read({k: v for k, v in row.items() if v not in (None, "")}, f"row {n}") for n, row in enumerate(rows, 2))
    return tasks_from_lines(text.splitlines(), path.parent, path.name)


def tasks_from_lines(lines: Iterable[str], base: Path, source: str = "stdin") -> tuple[list[BatchTask], list[TaskProblem]]:
    """Tasks from JSONL lines (manifest fields) or bare video paths, one per line."""
    reader = _RowReader(base, source)
    items = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("{"):
            try:
                row: Any = json.loads(text)
            except json.JSONDecodeError as error:
                items.append(TaskProblem(f"line {number}", "", f"{source} line {number}: not JSON ({error.msg})"))
                continue
        else:
            row = text
        items.append(reader.read(row, f"line {number}"))
    return _split(items)
