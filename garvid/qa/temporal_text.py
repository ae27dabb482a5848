"""The text of a temporal prompt: keyframes with timestamps, region replays, the question.

The pieces come from a protocol file (:mod:`garvid.qa.protocol`); this module only puts them
in order. For keyframes k = 1..K::

    intro (region list)
    [new shot line]                          before frame k when it starts another shot (protocol's mark_shots)
    frame k (timestamp, <|image|>)          one per keyframe, in time order
      region line "<PromptS>: <cropS x256>"  per object visible on frame k (slots ascending)
      or "<PromptS> is not visible ..."      per object not visible there
    question

Keyframes the protocol does not replay on get only their frame line. Every ``<|image|>``
becomes that keyframe's image tokens; every crop run receives the region features
replayed from that keyframe's feature map, so each slot's runs appear in frame order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from garvid.gar.prompt import crop_run, plain_question, region_items
from garvid.gar.tokenizer import IMAGE_TOKEN, prompt_token
from garvid.qa.protocol import ProtocolText


@dataclass(frozen=True)
class KeyframeLayout:
    """What one keyframe contributes to the prompt."""

    time: float  # seconds
    replayed: tuple[int, ...] = ()  # slots whose region features are replayed from this frame
    not_visible: tuple[int, ...] = ()  # slots said to be not visible on this frame
    new_shot: bool = False  # in another shot than the keyframe before it, and the protocol marks shots


def temporal_text(text: ProtocolText, slots: Sequence[int], keyframes: Sequence[KeyframeLayout], question: str) -> str:
    """The user turn of a temporal prompt about ``slots`` (ascending) over ``keyframes``.

    ``question`` is a planned question (its user text is kept plain text, see
    :func:`garvid.gar.prompt.plain_question`); the protocol's pieces are garvid's own text.
    """
    count = len(keyframes)
    parts = [text.intro.format(objects=region_items(slots), count=count)]
    for number, frame in enumerate(keyframes, 1):
        if frame.new_shot:
            if text.new_shot is None:
                raise ValueError("a keyframe marked as a new shot needs the protocol's [text] new_shot piece")
            parts.append(text.new_shot.format())
        parts.append(text.frame.format(number=number, count=count, time=frame.time, image=IMAGE_TOKEN))
        for slot in sorted({*frame.replayed, *frame.not_visible}):
            if slot in frame.replayed:
                parts.append(text.region.format(prompt=prompt_token(slot), crop=crop_run(slot)))
            else:
                parts.append(text.not_visible.format(prompt=prompt_token(slot)))
    parts.append(text.question.format(question=plain_question(question)))
    return "".join(parts)


def describe_question(text: ProtocolText, slot: int) -> str:
    """The protocol's description request about the region in ``slot``."""
    return text.describe.format(prompt=prompt_token(slot))
