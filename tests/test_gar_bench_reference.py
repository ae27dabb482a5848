"""GAR-Bench-VQA in reference-compatibility mode, against layouts built by hand the way the
reference's ``evaluation/eval_dataset.py`` (``MultiRegionDataset``) builds them."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from garvid.errors import GarvidError
from garvid.eval.gar_bench import reference_layout, reference_region_order
from garvid.gar.processor import prompt_label_map
from garvid.gar.prompt import tokenize_prompt, visible_text
from garvid.gar.tokenizer import CROP_TOKEN_IDS, PLM_CHAT_TEMPLATE, build_tiny_tokenizer

W, H = 40, 30
# (x1, y1, x2, y2) inclusive rectangles; <Prompt5> overlaps <Prompt0>, <Prompt1> overlaps <Prompt2>
RECTS = [(0, 0, 9, 9), (10, 0, 19, 9), (15, 5, 24, 14), (0, 15, 9, 24), (20, 20, 29, 29), (5, 5, 14, 14)]
QUESTION = (
    "Question: Is <Prompt5> next to <Prompt0>, <Prompt1>, <Prompt2>, <Prompt3> or <Prompt4>?\nOptions:\n"
    "A. <Prompt0>\nB. <Prompt4>\nAnswer with the correct option's letter directly."
)
ORDER = [5, 2, 0, 4, 1, 3]  # one possible set iteration order, fixed for the test


def _masks(rects=RECTS) -> list[np.ndarray]:
    masks = []
    for x1, y1, x2, y2 in rects:
        mask = np.zeros((H, W), dtype=bool)
        mask[y1 : y2 + 1, x1 : x2 + 1] = True
        masks.append(mask)
    return masks


def _reference_text(order: list[int], question: str) -> str:
    """The prompt string as MultiRegionDataset writes it, for regions in ``order``."""
    objects_desc = "There are some objects I am curious about: "
    sub_image_desc = ""
    for idx in order:
        objects_desc += f"<Prompt{idx}>; "
        crop = f"<|reserved_special_token_{idx + 2}|>"
        sub_image_desc += f"<Prompt{idx}>: {crop * 256}\n"
    return objects_desc + "\n" + sub_image_desc + "\n" + question


def _reference_label_map(order: list[int]) -> np.ndarray:
    """Painted in ``order``, first wins; <Prompt5>+ get value 5 (``<NO_Prompt>``), like the rest."""
    labels = np.full((H, W), 255, dtype=np.int16)
    for idx, (x1, y1, x2, y2) in ((i, RECTS[i]) for i in order):
        area = labels[y1 : y2 + 1, x1 : x2 + 1]
        area[area == 255] = min(idx, 5)
    labels[labels == 255] = 5
    return labels.astype(np.uint8)


def test_more_than_five_regions_prompt_text_and_tokens() -> None:
    layout = reference_layout(_masks(), QUESTION, ORDER)
    assert visible_text(layout.text) == _reference_text(ORDER, QUESTION)
    tokenizer = build_tiny_tokenizer()
    tokens = tokenize_prompt(tokenizer, PLM_CHAT_TEMPLATE, layout.text, 256 * 3)
    ids = tokens.input_ids
    reference_ids = tokenizer(tokens.text.replace("<|image|>", "<|image|>" * 256 * 3))["input_ids"]
    assert ids == reference_ids
    # the five GAR slots have their crop runs (replayed); <Prompt5>'s crop token is
    # <|reserved_special_token_7|> (128012): 256 plain tokens, never replayed
    assert sorted(tokens.crop_spans) == [0, 1, 2, 3, 4]
    assert ids.count(128012) == 256 and 128012 not in CROP_TOKEN_IDS
    assert "<Prompt5>" not in tokenizer.convert_ids_to_tokens(ids)  # plain text, not an added token
    first_runs = sorted((spans[0][0], slot) for slot, spans in tokens.crop_spans.items())
    assert [slot for _, slot in first_runs] == [2, 0, 4, 1, 3]  # the set order, <Prompt5> first but not a slot


def test_mask_map_is_painted_in_set_order_with_prompt5_as_no_region() -> None:
    layout = reference_layout(_masks(), QUESTION, ORDER)
    painted = prompt_label_map(layout.masks, (W, H))
    expected = _reference_label_map(ORDER)
    assert np.array_equal(painted, expected)
    assert painted[7, 7] == 5  # <Prompt5> came first: its pixels are "no region", even where <Prompt0> is
    assert painted[7, 17] == 2 and painted[2, 2] == 0  # <Prompt2> before <Prompt1> wins their overlap


def test_every_region_replays_the_last_masks_box() -> None:
    layout = reference_layout(_masks(), QUESTION, ORDER)
    last = (5 / W, 5 / H, 14 / W, 14 / H)  # the 6th mask's box: <Prompt5>'s, which is itself never replayed
    assert layout.boxes == {k: last for k in range(5)}
    two = reference_layout(_masks(RECTS[:2]), "<Prompt0> or <Prompt1>?", [1, 0])
    assert two.boxes == {0: (10 / W, 0.0, 19 / W, 9 / H), 1: (10 / W, 0.0, 19 / W, 9 / H)}
    assert visible_text(two.text) == _reference_text([1, 0], "<Prompt0> or <Prompt1>?")


def test_region_order_is_the_set_iteration_of_the_prompt_strings() -> None:
    order = reference_region_order(QUESTION)
    assert order == [int(t[7:-1]) for t in set(re.findall(r"<Prompt\d+>", QUESTION))]
    assert sorted(order) == list(range(6))


@pytest.mark.parametrize("question", ["<Prompt0> and <Prompt1>?", "<Prompt0> <Prompt1> <Prompt2> <Prompt7>"])
def test_regions_that_do_not_match_the_masks_are_refused(question: str) -> None:
    with pytest.raises(GarvidError, match="names regions"):
        reference_layout(_masks(RECTS[:3]), question, reference_region_order(question))


def test_answer_uses_the_layouts_boxes_for_every_replay(monkeypatch) -> None:
    from garvid.gar import encoding
    from garvid.gar.loading import load_gar
    from garvid.options import GenerationOptions
    from garvid.qa.steps import drive
    from garvid.qa.image_answering import layout_steps

    seen = {}
    real = encoding.roi_replay

    def spy(maps, boxes, frame_index, scaling):
        seen["boxes"] = boxes.tolist()
        return real(maps, boxes, frame_index, scaling=scaling)

    monkeypatch.setattr(encoding, "roi_replay", spy)
    frame = Image.fromarray(np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8))
    model = load_gar("tiny-random", device="cpu")
    layout = reference_layout(_masks(), QUESTION, ORDER)
    answer = drive(layout_steps(frame, layout, model, generation=GenerationOptions(max_new_tokens=2)))
    assert seen["boxes"] == [[5 / W, 5 / H, 14 / W, 14 / H]] * 5
    assert len(answer.answer_token_ids) <= 2
