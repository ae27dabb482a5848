"""Planning a video question's prompt: which objects take which slots, the checkpoint's
small files, and the temporal prompt's layout, tokens and size (all before a model loads)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Sequence

from garvid.errors import GarvidError, RegionError
from garvid.gar.config import GARConfig
from garvid.gar.processor import ImageConfig, choose_grid
from garvid.gar.prompt import DESCRIBE_SLOT, QuestionPlan, plan_question, tokenize_prompt
from garvid.gar.tokenizer import load_chat_template, load_tokenizer
from garvid.options import PromptOptions
from garvid.qa.protocol import Protocol
from garvid.qa.video_request import VideoRequest
from garvid.qa.temporal_text import KeyframeLayout, describe_question, temporal_text
from garvid.regions.prompts import RegionPrompts


_PROMPT_SLOT = re.compile(r"<Prompt(\d+)>")


def plan_request(request: VideoRequest, prompts: RegionPrompts, protocol: Protocol) -> QuestionPlan:
    """Check the question against the prompts' objects (or plan a description of them all)."""
    object_ids = prompts.object_ids
    if request.question is None:
        if not object_ids:
            raise RegionError("no regions given: pass at least one mask, box or point")
        return QuestionPlan(sorted(object_ids), {}, describe_question(protocol.text, DESCRIBE_SLOT))
    if request.literal_question:
        return _literal_plan(object_ids, request.question)
    return plan_question(object_ids, request.question, request.options.prompt.multiple_choice)


def _literal_plan(object_ids: list[int], question: str) -> QuestionPlan:
    """A benchmark's question, asked as written: ``<PromptK>`` is object K+1, other words are text.

    (User questions are rewritten: "object 2" or "#2" becomes ``<Prompt1>``; a benchmark
    question such as VideoRefer's keeps its ``<object0>`` labels as text.)
    """
    slots = sorted({int(k) for k in _PROMPT_SLOT.findall(question)})
    if not slots:
        raise RegionError("the question names no region (<PromptK>)")
    missing = [f"<Prompt{slot}>" for slot in slots if slot + 1 not in object_ids]
    if missing:
        raise RegionError(f"the question names {missing[0]} but no mask fills that slot")
    return QuestionPlan([slot + 1 for slot in slots], {slot: slot + 1 for slot in slots}, question)


@dataclass
class GarFiles:
    """The small files of a GAR checkpoint, read before tracking to size the prompt."""

    name: str
    tokenizer: Any
    chat_template: str
    image_config: ImageConfig
    context: int  # the language model's maximum sequence length

    @classmethod
    def read(cls, name_or_path: str) -> GarFiles:
        from garvid.gar.loading import resolve_checkpoint

        name, checkpoint = resolve_checkpoint(name_or_path)
        config_path = checkpoint / "config.json"
        if not config_path.is_file():
            raise GarvidError(f"GAR checkpoint {checkpoint} has no config.json")
        config = GARConfig.from_file(config_path)
        tokenizer = load_tokenizer(checkpoint)
        return cls(
            name=name_or_path,
            tokenizer=tokenizer,
            chat_template=load_chat_template(checkpoint, tokenizer),
            image_config=ImageConfig.from_checkpoint(checkpoint),
            context=int(config.mllm.text_config.max_position_embeddings),
        )


class TemporalPromptBuilder:
    """Temporal prompts for one request: text layout, tokens, and their size."""

    def __init__(self, files: GarFiles, protocol: Protocol, options: PromptOptions, frame_size: tuple[int, int]):
        self.files, self.protocol, self.options = files, protocol, options
        self.single_tile = protocol.tiles == "single"
        self.image_config = replace(files.image_config, max_num_tiles=min(protocol.max_tiles, files.image_config.max_num_tiles))
        ncw, nch = choose_grid(*frame_size, self.image_config.tile_size, self.image_config.max_num_tiles)
        self.tiles_per_frame = 1 if self.single_tile else 1 + ncw * nch

    @property
    def tokens_per_image(self) -> int:
        return self.image_config.tokens_per_tile * self.tiles_per_frame

    def layout(self, times: list[float], visible: list[list[int]], slots: list[int], shots: Sequence[int] = ()) -> list[KeyframeLayout]:
        """Keyframe layouts: on replaying keyframes, visible slots replayed, the others said not visible.

        ``shots`` holds each keyframe's shot (any labels; none: one shot); when the protocol
        marks shots, a keyframe whose shot differs from the keyframe before it is marked.
        """
        layouts = []
        for index, (moment, shown) in enumerate(zip(times, visible)):
            new_shot = self.protocol.mark_shots and 0 < index < len(shots) and shots[index] != shots[index - 1]
            if self.protocol.carries_replay(index):
                hidden = tuple(s for s in slots if s not in shown)
                layouts.append(KeyframeLayout(moment, replayed=tuple(sorted(shown)), not_visible=hidden, new_shot=new_shot))
            else:
                layouts.append(KeyframeLayout(moment, new_shot=new_shot))
        return layouts

    def tokens(self, slots: list[int], layouts: list[KeyframeLayout], question: str):
        text = temporal_text(self.protocol.text, slots, layouts, question)
        return tokenize_prompt(
            self.files.tokenizer,
            self.files.chat_template,
            text,
            self.tokens_per_image,
            leading_images=0,
            double_bos=self.options.double_bos,
        )

    def worst_case_length(self, count: int, slots: list[int], question: str, last_time: float, cuts: bool = False) -> int:
        """Prompt tokens with ``count`` keyframes on which every object is visible (with ``cuts``:
        each in a shot of its own, so every keyframe after the first is marked as a new shot)."""
        layouts = self.layout([last_time] * count, [slots] * count, slots, range(count) if cuts else ())
        return len(self.tokens(slots, layouts, question).input_ids)

