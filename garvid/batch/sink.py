"""Where batch results go: one file per item, ``errors.jsonl``, or JSON lines on stdout.

Every item's file is written atomically, so an output that exists is complete; one that
exists, reads back and answers the same request (see :mod:`garvid.batch.journal`) is
skipped on the next run (``overwrite`` redoes it). One run at a time writes to a folder
(a lock file), and no output may overwrite an input of the run. Failures are appended to
``OUT_DIR/errors.jsonl`` as they happen (the file is started afresh by each run's first
failure and removed by a run without any, so it lists the last run's failures). JSON
lines are flushed one by one; a closed pipe (``| head -n 1``) stops the run instead of
raising.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import pysubs2

from garvid.batch.journal import JOURNAL_FILE, RequestJournal
from garvid.batch.tasks import BatchTask, TaskProblem
from garvid.errors import GarvidError
from garvid.files import RunInputs, check_output_folder, exclusive_lock, write_text
from garvid.qa.video_request import VideoRequest

BatchFormat = Literal["json", "srt", "vtt", "jsonl"]
BATCH_FORMATS: tuple[str, ...] = ("json", "srt", "vtt", "jsonl")
ERRORS_FILE = "errors.jsonl"
#: Held by the run writing to an output folder; a second run on the folder is refused.
LOCK_FILE = ".garvid-batch.lock"


@dataclass
class BatchSummary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    pipe_closed: bool = False
    failures: list[dict[str, Any]] = field(default_factory=list)


def check_output_dir(out_dir: Path, inputs: RunInputs) -> None:
    """Refuse, before any work, an output folder that cannot be written or would overwrite an
    input of the run (its own files included: errors, request journal, lock)."""
    check_output_folder("-o", out_dir, inputs)
    for name in (ERRORS_FILE, JOURNAL_FILE, LOCK_FILE):
        inputs.check("the run's own file", out_dir / name)


class BatchSink:
    """Writes what each item produced and keeps the counts."""

    def __init__(
        self,
        out_dir: Path | None,
        fmt: BatchFormat,
        *,
        overwrite: bool = False,
        stdout: IO[str] | None = None,
        inputs: RunInputs | None = None,
    ):
        """``inputs`` are the run's files: no output may overwrite one (checked here and by :meth:`check`)."""
        if fmt not in BATCH_FORMATS:
            raise ValueError(f"unknown batch format {fmt!r}")
        self.out_dir, self.fmt, self.overwrite = out_dir, fmt, overwrite
        self.inputs = inputs or RunInputs()
        self.lines = fmt == "jsonl" or out_dir is None
        self.stdout = stdout or sys.stdout
        self.summary = BatchSummary()
        self.started = time.perf_counter()
        self.errors_started = False
        self.journal: RequestJournal | None = None
        self.lock = ExitStack()
        if out_dir is not None:
            check_output_dir(out_dir, self.inputs)
            out_dir.mkdir(parents=True, exist_ok=True)
            busy = f"another garvid batch is writing to {out_dir}: wait for it to finish, or give another -o"
            self.lock.enter_context(exclusive_lock(out_dir / LOCK_FILE, busy))
            if not self.lines:
                self.journal = RequestJournal(out_dir / JOURNAL_FILE)

    def __enter__(self) -> BatchSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.close()

    def output_path(self, task: BatchTask) -> Path | None:
        if self.lines or self.out_dir is None:
            return None
        return self.out_dir / f"{task.id}.{self.fmt}"

    def check(self, task: BatchTask) -> None:
        """Refuse (GarvidError) a task whose output would leave the output folder (through a
        symlink inside it) or overwrite an input of the run."""
        path = self.output_path(task)
        if path is None:
            return
        assert self.out_dir is not None
        real = os.path.realpath(path)
        if not Path(real).is_relative_to(os.path.realpath(self.out_dir)):
            raise GarvidError(f"the output of item {task.id!r}, {path}, resolves to {real}, outside -o {self.out_dir}")
        self.inputs.check(f"the output of item {task.id!r},", path)

    def earlier_output(self, task: BatchTask, request: VideoRequest) -> list[str] | None:
        """What an earlier run left for ``task``: None when nothing usable (or ``overwrite``: do
        it), ``[]`` when a complete output answers this very request (skip it), else the
        request fields it was written with that differ (``["unknown"]`` when not recorded)."""
        path = self.output_path(task)
        if path is None or self.journal is None or self.overwrite or not self._reads_back(path, request.when is not None):
            return None
        return self.journal.differences(task.id, request) or []

    def _reads_back(self, path: Path, may_be_empty: bool) -> bool:
        """Whether ``path`` reads back as an answer in the run's format. Subtitles of a ``when``
        scan may hold no cue (the statement never held); an answer always has one."""
        if not path.is_file():
            return False
        try:
            text = path.read_text(encoding="utf-8")
            if self.fmt == "json":
                data = json.loads(text)
                return isinstance(data, dict) and any(k in data for k in ("answer", "answers", "descriptions", "intervals"))
            return len(pysubs2.SSAFile.from_string(text, format_=self.fmt)) > 0 or may_be_empty
        except (OSError, UnicodeDecodeError, ValueError, pysubs2.exceptions.Pysubs2Error):
            return False

    def skip(self, task: BatchTask) -> None:
        self.summary.skipped += 1

    def done(self, task: BatchTask, request: VideoRequest, result: Any) -> None:
        """Write a finished item: ``result`` (a :class:`garvid.qa.answers.VideoAnswer`, or a
        :class:`garvid.qa.when_result.WhenAnswer`) answers ``request``."""
        from garvid.output.formats import render_result

        if self.lines:
            if not self._line({"id": task.id, **result.to_json()}):
                return  # the reader is gone: this answer was not delivered
        else:
            write_text(render_result(result, self.fmt), self.output_path(task))
            if self.journal is not None:
                self.journal.record(task.id, request)
        self.summary.done += 1

    def failed(self, task: BatchTask | TaskProblem, stage: str, reason: str) -> None:
        record = {"id": task.id, "video": str(task.video), "stage": stage, "error": reason}
        self.summary.failed += 1
        self.summary.failures.append(record)
        if self.out_dir is not None:
            # the first failure starts this run's list; a refused run leaves the last one alone
            with open(self.out_dir / ERRORS_FILE, "a" if self.errors_started else "w", encoding="utf-8") as errors:
                errors.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.errors_started = True

    def _line(self, data: dict[str, Any]) -> bool:
        """Write one JSON line to stdout; False once its reader has gone (``| head -n 1``)."""
        if self.summary.pipe_closed:
            return False
        try:
            self.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
            self.stdout.flush()
        except BrokenPipeError:
            self.summary.pipe_closed = True
            return False
        return True

    def finish(self) -> BatchSummary:
        if self.out_dir is not None and not self.errors_started:
            (self.out_dir / ERRORS_FILE).unlink(missing_ok=True)  # no failure this run
        self.summary.seconds = time.perf_counter() - self.started
        return self.summary
