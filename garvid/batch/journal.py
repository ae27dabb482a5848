"""Which request each batch output answers, so that a rerun skips only true repeats.

An output file says nothing about the question, model or protocol that produced it, so
after each item the sink appends ``{"id", "request"}`` to ``OUT_DIR/.garvid-batch.jsonl``
(written after the output itself: a crash in between leaves an output without a record,
which a rerun treats as unknown, never as done). The request is every option that shapes
the answer, with the video and mask as absolute paths; where and how it runs (device, cache,
video decoder) is left out: decord and torchcodec give the same frames of 8-bit video (each output's
``video.decoder`` says which read them), so a run resumed with the other decoder keeps its outputs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from garvid.qa.video_request import VideoRequest

JOURNAL_FILE = ".garvid-batch.jsonl"


def request_fields(request: VideoRequest) -> dict[str, Any]:
    """The parts of ``request`` that decide its answer, as plain JSON values.

    The groups are flattened to one level under the names journals have always used
    (``model``, ``strategy``, ``stride`` as typed, ...), so outputs of earlier runs resume.
    """
    options = request.options
    regions = replace(request.regions, masks=tuple(Path(m).resolve() for m in request.regions.masks))
    fields: dict[str, Any] = {
        "video": Path(request.video).resolve(),
        "regions": asdict(regions),
        "question": request.question,
        "literal_question": request.literal_question,
        **asdict(options.keyframes),
        "model": options.model.name,
        "dtype": options.model.dtype,
        "attn": options.model.attn,
        "tracker": options.tracking.tracker,
        "stride": str(options.tracking.stride),
        "fps": options.tracking.fps,
        "generation": asdict(options.generation),
        "prompt": asdict(options.prompt),
        "tracks": request.tracks,
        **({"when": asdict(request.when)} if request.when is not None else {}),  # absent for ask: earlier journals resume
    }
    return json.loads(json.dumps(fields, default=str))


class RequestJournal:
    """The request each item's output answers, read from and appended to the journal file."""

    def __init__(self, path: Path):
        self.path = path
        self.requests: dict[str, dict[str, Any]] = {}
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill: that output counts as unknown
            if isinstance(entry, dict) and isinstance(entry.get("request"), dict):
                self.requests[str(entry.get("id"))] = entry["request"]

    def differences(self, task_id: str, request: VideoRequest) -> list[str] | None:
        """None when the output of ``task_id`` answers ``request``; else the fields that differ
        (``["unknown"]`` when no request was recorded for it)."""
        recorded = self.requests.get(task_id)
        if recorded is None:
            return ["unknown"]
        wanted = request_fields(request)
        changed = sorted(k for k in wanted.keys() | recorded.keys() if wanted.get(k) != recorded.get(k))
        return changed or None

    def record(self, task_id: str, request: VideoRequest) -> None:
        fields = request_fields(request)
        self.requests[task_id] = fields
        with open(self.path, "a", encoding="utf-8") as journal:
            journal.write(json.dumps({"id": task_id, "request": fields}, ensure_ascii=False) + "\n")
