"""What ``garvid ask`` and ``garvid describe`` produce: timed answers and their JSON.

Plain data with no heavy imports, so formatting and the CLI can use it without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Text standing in for a description when the object is on none of a window's keyframes.
NOT_VISIBLE_TEXT = "(not visible)"


@dataclass
class Answer:
    """GAR's text for one window (and, when describing, one object)."""

    start: float
    end: float
    keyframes: list[int]
    text: str
    token_ids: list[int] = field(default_factory=list)
    object_id: int | None = None
    prompt_tokens: int = 0  # length of the prompt GAR read (0 when it was not asked)
    raw_text: str | None = None  # the model's own text, region tokens kept as <PromptK> (None when it was not asked)
    reference_text: str | None = None  # the text as the reference decodes it (region tokens dropped): what benchmarks score


@dataclass
class VideoAnswer:
    """The result of one request, with everything ``--format json`` reports."""

    video: dict[str, Any]
    question: str | None
    prompt_question: str
    answers: list[Answer]
    windowed: bool
    shots: list[dict[str, Any]]  # the shots tracking stayed within (Shot.to_json each)
    objects: list[dict[str, Any]]  # per asked-about object: id, presence intervals, where it is on each keyframe
    keyframes: list[dict[str, Any]]
    frames_per_window: int
    model: dict[str, str]
    tracker: dict[str, Any]
    protocol: dict[str, Any]
    timings: dict[str, float]

    @property
    def describing(self) -> bool:
        return self.question is None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "video": self.video,
            "question": self.question,
            "prompt_question": self.prompt_question,
        }
        if self.describing:
            data["descriptions"] = [
                {
                    "start": start,
                    "end": end,
                    "keyframes": keyframes,
                    "objects": [
                        {"id": a.object_id, "text": a.text, "raw_text": a.raw_text, "prompt_tokens": a.prompt_tokens} for a in group
                    ],
                }
                for (start, end, keyframes), group in self.by_window()
            ]
        elif self.windowed:
            data["answers"] = [
                {
                    "start": a.start,
                    "end": a.end,
                    "keyframes": a.keyframes,
                    "text": a.text,
                    "raw_text": a.raw_text,
                    "prompt_tokens": a.prompt_tokens,
                }
                for a in self.answers
            ]
        else:
            data["answer"] = self.answers[0].text
            data["raw_answer"] = self.answers[0].raw_text
            data["prompt_tokens"] = self.answers[0].prompt_tokens
        data.update(
            shots=self.shots,
            objects=self.objects,
            keyframes=self.keyframes,
            frames_per_window=self.frames_per_window,
            model=self.model,
            tracker=self.tracker,
            protocol=self.protocol,
            timings={name: round(seconds, 4) for name, seconds in self.timings.items()},
        )
        return data

    def by_window(self) -> list[tuple[tuple[float, float, list[int]], list[Answer]]]:
        """Answers grouped by window, in time order."""
        groups: dict[tuple[float, float], list[Answer]] = {}
        for answer in self.answers:
            groups.setdefault((answer.start, answer.end), []).append(answer)
        return [((start, end, group[0].keyframes), group) for (start, end), group in groups.items()]
