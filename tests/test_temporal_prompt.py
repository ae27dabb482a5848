"""The temporal prompt's text and exact token layout (tiny tokenizer, shipped protocol)."""

from __future__ import annotations

import dataclasses

import pytest

from garvid.gar.prompt import tokenize_prompt, visible_text
from garvid.gar.tokenizer import CROP_TOKEN_IDS, IMAGE_TOKEN_ID, PLM_CHAT_TEMPLATE, build_tiny_tokenizer
from garvid.qa.protocol import load_protocol
from garvid.qa.temporal_text import KeyframeLayout, describe_question, temporal_text

CROP = {slot: f"<|reserved_special_token_{slot + 2}|>" * 256 for slot in range(5)}


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture(scope="module")
def protocol():
    return load_protocol("temporal-v1")


LAYOUTS = [
    KeyframeLayout(0.0, replayed=(0, 1)),
    KeyframeLayout(1.25, replayed=(1,), not_visible=(0,)),
    KeyframeLayout(2.5, replayed=(0, 1)),
]


def test_text_follows_the_protocol(protocol):
    text = visible_text(temporal_text(protocol.text, [0, 1], LAYOUTS, "What does <Prompt1> do to <Prompt0>?"))
    expected = (
        "There are some objects I am curious about: <Prompt0>; <Prompt1>; \n"
        "Here are 3 frames of a video in time order.\n"
        "Frame 1 at 0.0s: <|image|>\n"
        f"<Prompt0>: {CROP[0]}\n"
        f"<Prompt1>: {CROP[1]}\n"
        "Frame 2 at 1.2s: <|image|>\n"
        "<Prompt0> is not visible in this frame.\n"
        f"<Prompt1>: {CROP[1]}\n"
        "Frame 3 at 2.5s: <|image|>\n"
        f"<Prompt0>: {CROP[0]}\n"
        f"<Prompt1>: {CROP[1]}\n"
        "\nWhat does <Prompt1> do to <Prompt0>?"
    )
    assert text == expected


def _runs(ids: list[int], token: int) -> list[tuple[int, int]]:
    runs = []
    for i, t in enumerate(ids):
        if t == token:
            if runs and runs[-1][1] == i:
                runs[-1] = (runs[-1][0], i + 1)
            else:
                runs.append((i, i + 1))
    return runs


@pytest.mark.parametrize("tiles", [1, 3])
def test_token_layout_images_then_crops_per_keyframe_then_question(tokenizer, protocol, tiles):
    question = "What does <Prompt1> do to <Prompt0>?"
    text = temporal_text(protocol.text, [0, 1], LAYOUTS, question)
    tokens = tokenize_prompt(tokenizer, PLM_CHAT_TEMPLATE, text, 256 * tiles, leading_images=0)
    ids = tokens.input_ids
    assert ids[:2] == [128000, 128000]  # the reference eval path's double BOS
    images = tokens.image_spans
    assert images == _runs(ids, IMAGE_TOKEN_ID) and len(images) == 3
    assert all(end - start == 256 * tiles for start, end in images)
    assert [len(tokens.crop_spans[s]) for s in (0, 1)] == [2, 3]  # object 0 is not visible on keyframe 2
    # every crop run sits after its keyframe's image and before the next keyframe's image
    bounds = [start for start, _ in images] + [len(ids)]
    owners = {slot: [next(k for k in range(3) if bounds[k] < s < bounds[k + 1]) for s, _ in runs] for slot, runs in tokens.crop_spans.items()}
    assert owners == {0: [0, 2], 1: [0, 1, 2]}
    for slot, runs in tokens.crop_spans.items():
        for start, end in runs:
            assert end - start == 256 and set(ids[start:end]) == {CROP_TOKEN_IDS[slot]}
    # the question comes last, right before the end of the user turn
    question_ids = tokenizer(question, add_special_tokens=False)["input_ids"]
    tail = ids[: -len(tokenizer("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", add_special_tokens=False)["input_ids"])]
    assert tail[-len(question_ids) :] == question_ids
    last_crop = max(end for runs in tokens.crop_spans.values() for _, end in runs)
    assert last_crop < len(tail) - len(question_ids)


def test_keyframes_without_replay_carry_only_their_image(tokenizer, protocol):
    every_other = dataclasses.replace(protocol, replay_every=2)
    assert [every_other.carries_replay(k) for k in range(4)] == [True, False, True, False]
    layouts = [KeyframeLayout(t, replayed=(0,)) if every_other.carries_replay(k) else KeyframeLayout(t) for k, t in enumerate([0.0, 1.0, 2.0])]
    tokens = tokenize_prompt(tokenizer, PLM_CHAT_TEMPLATE, temporal_text(protocol.text, [0], layouts, "q"), 256, leading_images=0)
    assert len(tokens.image_spans) == 3 and len(tokens.crop_spans[0]) == 2


def test_describe_question_names_the_slot(protocol):
    assert "<Prompt1>" in describe_question(protocol.text, 1)
