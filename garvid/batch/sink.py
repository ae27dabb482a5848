"""Where batch results go: one file per item, ``errors.jsonl``, or JSON lines on stdout.

Every item's file is written atomically, so an output that exists is complete; one that
exists and reads back is skipped on the next run (``overwrite`` redoes it). Failures are
appended to ``OUT_DIR/errors.jsonl`` as they happen (the file is started afresh each run,
so it lists this run's failures). JSON lines are flushed one by one; a closed pipe (``|
head -n 1``) stops the run instead of raising.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import pysubs2

from garvid.batch.tasks import BatchTask, TaskProblem
from garvid.files import write_text

BatchFormat = Literal["json", "srt", "vtt", "jsonl"]
BATCH_FORMATS: tuple[str, ...] = ("json", "srt", "vtt", "jsonl")
ERRORS_FILE = "errors.jsonl"


@dataclass
class BatchSummary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    pipe_closed: bool = False
    failures: list[dict[str, Any]] = field(default_factory=list)


class BatchSink:
    """Writes what each item produced and keeps the counts."""

    def __init__(self, out_dir: Path | None, fmt: BatchFormat, *, overwrite: bool = False, stdout: IO[str] | None = None):
        if fmt not in BATCH_FORMATS:
            raise ValueError(f"unknown batch format {fmt!r}")
        self.out_dir, self.fmt, self.overwrite = out_dir, fmt, overwrite
        self.lines = fmt == "jsonl" or out_dir is None
        self.stdout = stdout or sys.stdout
        self.summary = BatchSummary()
        self.started = time.perf_counter()
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / ERRORS_FILE).unlink(missing_ok=True)

    def output_path(self, task: BatchTask) -> Path | None:
        if self.lines or self.out_dir is None:
            return None
        return self.out_dir / f"{task.id}.{self.fmt}"

    def finished_before(self, task: BatchTask) -> bool:
        """Whether ``task`` has a complete output from an earlier run (and may be skipped)."""
        path = self.output_path(task)
        if path is None or self.overwrite or not path.is_file():
            return False
        try:
            text = path.read_text(encoding="utf-8")
            if self.fmt == "json":
                data = json.loads(text)
                return isinstance(data, dict) and any(k in data for k in ("answer", "answers", "descriptions"))
            return len(pysubs2.SSAFile.from_string(text, format_=self.fmt)) > 0
        except (OSError, UnicodeDecodeError, ValueError, pysubs2.exceptions.Pysubs2Error):
            return False

    def skip(self, task: BatchTask) -> None:
        self.summary.skipped += 1

    def done(self, task: BatchTask, result: Any) -> None:
        """Write a finished item: ``result`` is a :class:`garvid.qa.answers.VideoAnswer`."""
        from garvid.output.formats import render_answer

        if self.lines:
            self._line({"id": task.id, **result.to_json()})
        else:
            write_text(render_answer(result, self.fmt), self.output_path(task))
        self.summary.done += 1

    def failed(self, task: BatchTask | TaskProblem, stage: str, reason: str) -> None:
        record = {"id": task.id, "video": str(task.video), "stage": stage, "error": reason}
        self.summary.failed += 1
        self.summary.failures.append(record)
        if self.out_dir is not None:
            with open(self.out_dir / ERRORS_FILE, "a", encoding="utf-8") as errors:
                errors.write(json.dumps(record, ensure_ascii=False) + "\n")

    def _line(self, data: dict[str, Any]) -> None:
        try:
            self.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
            self.stdout.flush()
        except BrokenPipeError:
            self.summary.pipe_closed = True

    def finish(self) -> BatchSummary:
        self.summary.seconds = time.perf_counter() - self.started
        return self.summary
