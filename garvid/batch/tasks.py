"""Batch items from a folder of videos, a manifest (CSV or JSONL) or JSONL lines on stdin.

Mask convention for folders and bare video paths: ``clip.mp4`` is paired with ``clip.png``
beside it, else ``masks/clip.png`` in its folder; an item whose objects are named
(``--object`` for the run, or the row's ``objects``) needs no mask. Items that cannot be formed (a video
without a mask, a bad manifest row) become :class:`TaskProblem` records: reported, never
silently dropped.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from garvid.errors import GarvidError, invalid_text, printable
from garvid.files import read_input
from garvid.paths import user_path

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts"})
#: Longest name in an id (bytes): file systems hold 255, less the suffix and a temporary file's marks.
MAX_ID_PART = 200
MANIFEST_FIELDS = ("video", "mask", "tracks", "question", "mask_frame", "start", "end", "id", "objects")
#: Where a CSV row's cells beyond its header go (reported as an unknown field).
EXTRA_CELLS = "(cells beyond the header)"


@dataclass(frozen=True)
class BatchTask:
    """One video to answer; ``id`` names its output (a relative path without suffix)."""

    id: str
    video: Path
    mask: Path | None  # None when ``tracks`` gives the objects, or they are all given by name
    question: str | None = None
    mask_frame: int = 0
    start: float | None = None
    end: float | None = None
    objects: tuple[str, ...] = ()  # the item's own --object phrases (they replace the run's)
    tracks: Path | None = None  # a tracks JSON used instead of tracking (``--tracks``)

    def reads(self) -> tuple[Path, ...]:
        """The files this item reads: no output of the run may overwrite one."""
        return tuple(path for path in (self.video, self.mask, self.tracks) if path is not None)


@dataclass(frozen=True)
class TaskProblem:
    """An input item that is not a valid task, and why; ``named`` holds the files its row named,
    inputs of the run all the same (no other item's output may overwrite them)."""

    id: str
    video: str
    reason: str
    named: tuple[Path, ...] = ()

    def reads(self) -> tuple[Path, ...]:
        return self.named


def output_id(value: str) -> str:
    """``value`` as an item id: a relative name that stays inside the output folder.

    ValueError for an absolute id, a ``..`` part, an empty name, control characters (said so)
    or a name too long for a file;
    ``a/./b`` becomes ``a/b``. (Symlinks inside the output folder are checked where the
    outputs are written: :meth:`garvid.batch.sink.BatchSink.check`.)
    """
    control = next((c for c in value if ord(c) < 32 or ord(c) == 127), None)
    if control is not None:
        raise ValueError(f"id {value!r} holds the control character {control!r}: an id names a file, give it plain text")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or path.as_posix() == ".":
        raise ValueError(f"id {value!r} must be a relative name inside the output folder (no leading '/', no '..')")
    if any(len(part.encode()) > MAX_ID_PART for part in path.parts):
        raise ValueError(f"id {value[:40]!r}... has a name longer than {MAX_ID_PART} bytes, more than a file name can hold")
    return path.as_posix()


def paired_mask(video: Path) -> Path | None:
    """The mask of ``video`` by the folder convention, if it exists."""
    for candidate in (video.with_suffix(".png"), video.parent / "masks" / f"{video.stem}.png"):
        if candidate.is_file():
            return candidate
    return None


def _missing_mask(task_id: str, video: Path, named: tuple[Path, ...] = ()) -> TaskProblem:
    reason = f"no mask: expected {video.with_suffix('.png').name} or masks/{video.stem}.png beside it"
    return TaskProblem(task_id, str(video), reason, named or (video,))


def list_videos(folder: Path, recursive: bool = False) -> list[Path]:
    """The videos in ``folder`` (and below with ``recursive``; never under ``masks/``), in path order."""
    if not folder.is_dir():
        raise GarvidError(f"{folder} is not a folder")
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    videos = sorted(
        p for p in pattern
        if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and "masks" not in p.relative_to(folder).parts[:-1]
    )  # fmt: skip
    if not videos:
        raise GarvidError(f"no videos in {folder}{'' if recursive else ' (use -r for subfolders)'}")
    return videos


def tasks_from_folder(
    folder: Path, recursive: bool = False, masks_optional: bool = False
) -> tuple[list[BatchTask], list[TaskProblem]]:
    """Every video in ``folder`` (and below with ``recursive``), in path order.

    ``masks_optional``: the run names its objects (``--object``), so a video without a mask is fine.
    """
    videos = list_videos(folder, recursive)
    tasks, problems = [], []
    for video, task_id in zip(videos, _folder_ids([v.relative_to(folder) for v in videos])):
        mask = paired_mask(video)
        if mask is None and not masks_optional:
            problems.append(_missing_mask(task_id, video))
        else:
            tasks.append(BatchTask(task_id, video, mask))
    return tasks, problems


def _folder_ids(videos: list[Path]) -> list[str]:
    """Ids for videos of one folder: the path without suffix (``sub/clip``), unless another
    video shares it (``a.mp4`` and ``a.mkv``): then the full name (``a.mp4``), so that no
    two items ever write one output."""
    ids = [v.with_suffix("").as_posix() for v in videos]
    # full names are unique; repeat since one may equal another video's stem (a.mp4 and a.mp4.mkv)
    while repeated := {i for i, count in Counter(ids).items() if count > 1}:
        ids = [v.as_posix() if i in repeated else i for v, i in zip(videos, ids)]
    return ids


class _RowReader:
    """Turns manifest rows (dicts of strings or JSON values) into tasks, paths relative to ``base``."""

    def __init__(self, base: Path, source: str, masks_optional: bool = False):
        self.base, self.source, self.masks_optional = base, source, masks_optional
        self.seen: set[str] = set()

    def read(self, row: Any, where: str) -> BatchTask | TaskProblem:
        if isinstance(row, str):
            row = {"video": row}
        if not isinstance(row, dict) or not row.get("video"):
            return TaskProblem(where, "", f"{self.source} {where}: needs a 'video' field")
        for name, value in row.items():  # the row's text, before any of it becomes a path, an id or a question
            problem = invalid_text(str(name)) or invalid_text(json.dumps(value, ensure_ascii=False))
            if problem:
                return TaskProblem(where, printable(str(row["video"])), f"{self.source} {where}: field {printable(repr(name))} {problem}")
        video = self.path(row["video"])
        named = tuple(self.path(row[name]) for name in ("video", "mask", "tracks") if row.get(name))  # inputs, even of a bad row
        task_id = where
        unknown = sorted(set(row) - set(MANIFEST_FIELDS))
        try:
            task_id = output_id(str(row.get("id") or video.with_suffix("").name))
            if unknown:
                raise ValueError(f"unknown fields {unknown}; known: {', '.join(MANIFEST_FIELDS)}")
            if task_id in self.seen:
                raise ValueError(f"id {task_id!r} is used twice (give the row an 'id' of its own)")
            objects = _phrases(row.get("objects"))
            tracks = self.path(row["tracks"]) if row.get("tracks") else None
            mask = self.path(row["mask"]) if row.get("mask") else (None if tracks else paired_mask(video))
            if mask is None and tracks is None and not (objects or self.masks_optional):
                return _missing_mask(task_id, video, named)
            task = BatchTask(
                id=task_id,
                video=video,
                mask=mask,
                question=str(row["question"]) if row.get("question") not in (None, "") else None,
                mask_frame=_number(row, "mask_frame", int, "a frame number") or 0,
                start=_number(row, "start", float, "seconds"),
                end=_number(row, "end", float, "seconds"),
                objects=objects,
                tracks=tracks,
            )
        except (TypeError, ValueError) as error:
            return TaskProblem(task_id, str(video), f"{self.source} {where}: {error}", named)
        self.seen.add(task_id)
        return task

    def path(self, value: Any) -> Path:
        path = user_path(str(value))
        return path if path.is_absolute() else self.base / path


def _phrases(value: Any) -> tuple[str, ...]:
    """A row's ``objects``: a JSON list of phrases, or one string with phrases separated by ';'."""
    if value in (None, ""):
        return ()
    items = value.split(";") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ValueError("'objects' must be a list of phrases or a string of phrases separated by ';'")
    phrases = tuple(" ".join(item.split()) for item in items)
    if not all(phrases):
        raise ValueError("'objects' has an empty phrase")
    return phrases


def _number(row: dict[str, Any], name: str, kind: type, what: str) -> Any:
    """The row's ``name`` as ``kind`` (None when absent); ValueError naming the field otherwise."""
    value = row.get(name)
    if value in (None, ""):
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"'{name}' must be {what}, not {value!r}") from None


def _split(items: Iterable[BatchTask | TaskProblem]) -> tuple[list[BatchTask], list[TaskProblem]]:
    items = list(items)
    return [i for i in items if isinstance(i, BatchTask)], [i for i in items if isinstance(i, TaskProblem)]


def tasks_from_manifest(path: Path, masks_optional: bool = False) -> tuple[list[BatchTask], list[TaskProblem]]:
    """Tasks from a CSV (header row) or JSONL manifest; relative paths are relative to it."""
    # Excel's "CSV UTF-8" starts with a byte-order mark; bytes that are not UTF-8 fail their row alone
    text = read_input(path, "manifest").decode("utf-8-sig", errors="surrogateescape")
    reader = _RowReader(path.parent, path.name, masks_optional)
    if path.suffix.lower() == ".csv":
        # csv's own line handling (quoted line breaks, \r\n); cells beyond the header are reported
        rows = list(csv.DictReader(io.StringIO(text, newline=""), restkey=EXTRA_CELLS))
        if rows and "video" not in rows[0]:
            raise GarvidError(f"manifest {path} has no 'video' column (columns: {', '.join(rows[0])})")
        return _split(reader.read({k: v for k, v in row.items() if v not in (None, "")}, f"row {n}") for n, row in enumerate(rows, 2))
    return tasks_from_lines(text.split("\n"), path.parent, path.name, masks_optional)  # JSON Lines end at \n only


#: What a JSON value that is not an object is called in a stdin line's problem.
_JSON_KINDS = {list: "list", str: "a string", int: "a number", float: "a number", bool: "true/false", type(None): "null"}


def _json_scalar(text: str) -> bool:
    """Whether a stdin line is a JSON number, null, true or false (a JSON line, not a video path:
    a video so named is given as ``./42``)."""
    try:
        return json.loads(text) is None or isinstance(json.loads(text), (bool, int, float))
    except json.JSONDecodeError:
        return False


def tasks_from_lines(
    lines: Iterable[str], base: Path, source: str = "stdin", masks_optional: bool = False
) -> tuple[list[BatchTask], list[TaskProblem]]:
    """Tasks from JSONL lines (manifest fields) or bare video paths, one per line."""
    reader = _RowReader(base, source, masks_optional)
    items = []
    for number, line in enumerate(lines, 1):
        text = line.strip().removeprefix("\ufeff") if number == 1 else line.strip()
        if not text:
            continue
        if text.startswith(("{", "[", '"')) or _json_scalar(text):
            try:
                row: Any = json.loads(text)
            except json.JSONDecodeError as error:
                items.append(TaskProblem(f"line {number}", "", f"{source} line {number}: not JSON ({error.msg})"))
                continue
            if not isinstance(row, dict):
                kind = _JSON_KINDS.get(type(row), type(row).__name__)
                reason = f"{source} line {number}: a JSON line must be one object like {{\"video\": \"a.mp4\"}}, not {kind}"
                if not isinstance(row, list):
                    reason += f" (a video so named: write ./{printable(text)})"
                items.append(TaskProblem(f"line {number}", "", reason))
                continue
        else:
            row = text
        items.append(reader.read(row, f"line {number}"))
    return _split(items)
