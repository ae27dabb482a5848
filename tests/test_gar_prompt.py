"""GAR prompt templates, token layout, object rewriting and the tiny tokenizer."""

from __future__ import annotations

import re

import pytest

from garvid.errors import CheckpointError, RegionError
from garvid.gar.prompt import (
    MULTIPLE_CHOICE_SUFFIX,
    crop_run,
    describe_region_text,
    region_question_text,
    rewrite_question,
    tokenize_prompt,
    visible_text,
    with_multiple_choice_suffix,
)
from garvid.gar.tokenizer import (
    CROP_TOKEN_IDS,
    PLM_CHAT_TEMPLATE,
    build_tiny_tokenizer,
    load_chat_template,
    load_tokenizer,
    write_tiny_processor_files,
)

SYSTEM = (
    "You are a helpful language and vision assistant. You are able to understand the visual content that the "
    "user provides, and assist the user with a variety of tasks using natural language."
)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


# --- strings built the way the reference's eval_dataset.py builds them --------------------


def reference_single(prompt_token: str = "<Prompt1>") -> str:
    idx = int(re.match(r"<Prompt(\d+)>", prompt_token).group(1))
    crop = f"<|reserved_special_token_{idx + 2}|>"
    qs = f"There are some objects I am curious about: {prompt_token};\n{prompt_token}: {crop}Describe this masked region in detail."
    return qs.replace(crop, crop * 256)


def reference_multi(prompts: list[str], question: str) -> str:
    objects_desc = "There are some objects I am curious about: "
    sub_image_desc = ""
    for matched in prompts:  # the reference iterates a set; garvid fixes the order
        objects_desc += f"{matched}; "
        idx = int(re.match(r"<Prompt(\d+)>", matched).group(1))
        crop = f"<|reserved_special_token_{idx + 2}|>"
        sub_image_desc += f"{matched}: {crop}\n"
        sub_image_desc = sub_image_desc.replace(crop, crop * 256)
    return objects_desc + "\n" + sub_image_desc + "\n" + question


def test_single_region_template_byte_for_byte():
    assert describe_region_text() == reference_single("<Prompt1>")
    assert describe_region_text(3) == reference_single("<Prompt3>")
    assert describe_region_text().startswith("There are some objects I am curious about: <Prompt1>;\n<Prompt1>: <|reserved")
    assert describe_region_text().endswith("|>Describe this masked region in detail.")


def test_multi_region_template_byte_for_byte():
    question = "What is <Prompt0> doing to <Prompt2>?"
    text = visible_text(region_question_text([0, 2], question))
    assert text == reference_multi(["<Prompt0>", "<Prompt2>"], question)
    head = "There are some objects I am curious about: <Prompt0>; <Prompt2>; \n<Prompt0>: "
    assert text.startswith(head)
    assert f"{crop_run(0)}\n<Prompt2>: {crop_run(2)}\n\n{question}" in text


def test_multiple_choice_suffix_like_the_relationship_demo():
    question = "Which is bigger?\n(A) <Prompt0>\n(B) <Prompt1>"
    assert with_multiple_choice_suffix(question) == question + "\nAnswer with the correct option's letter directly."
    assert MULTIPLE_CHOICE_SUFFIX == "Answer with the correct option's letter directly."


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("what does object 2 do to object 1?", "what does <Prompt1> do to <Prompt0>?"),
        ("Is Obj 1 left of OBJECT #3?", "Is <Prompt0> left of <Prompt2>?"),
        ("compare #1 and #2", "compare <Prompt0> and <Prompt1>"),
        ("what is obj.2", "what is <Prompt1>"),
        ("describe <Prompt2> and object 1", "describe <Prompt2> and <Prompt0>"),
    ],
)
def test_object_rewriting_forms(question, expected):
    rewritten = rewrite_question(question, {1: 0, 2: 1, 3: 2})
    assert rewritten.text == expected
    assert rewritten.slots == sorted({int(m) for m in re.findall(r"<Prompt(\d+)>", expected)})


def test_question_naming_no_object_is_about_all_regions():
    rewritten = rewrite_question("What are these objects made of?", {3: 2, 1: 0})
    assert rewritten.text == "What are these objects made of?"
    assert rewritten.slots == [0, 2]


@pytest.mark.parametrize("question", ["what is object 4?", "compare #1 and #7", "is <Prompt3> red?"])
def test_undefined_objects_are_region_errors(question):
    with pytest.raises(RegionError, match="4|7|Prompt3"):
        rewrite_question(question, {1: 0, 2: 1})


# --- chat template and token layout ------------------------------------------------------


def expected_chat(user_text: str) -> str:
    return (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" + SYSTEM + "<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n<|image|>" + user_text.strip() + "<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


@pytest.mark.parametrize("grid", [(1, 1), (3, 2), (5, 3)])
def test_token_layout_double_bos_image_and_crop_runs(tokenizer, grid):
    ncw, nch = grid
    num_image_tokens = 256 * (1 + ncw * nch)
    user_text = region_question_text([0, 1], "What is <Prompt1> holding?")
    tokens = tokenize_prompt(tokenizer, PLM_CHAT_TEMPLATE, user_text, num_image_tokens)
    assert tokens.text == expected_chat(visible_text(user_text))
    reference_string = expected_chat(visible_text(user_text)).replace("<|image|>", "<|image|>" * num_image_tokens)
    assert tokens.input_ids == tokenizer(reference_string)["input_ids"]  # the reference's processor call
    assert tokens.input_ids[:3] == [128000, 128000, 128006]  # two BOS, then the system header
    assert tokens.input_ids.count(128002) == num_image_tokens
    [(start, end)] = tokens.image_spans
    assert end - start == num_image_tokens and set(tokens.input_ids[start:end]) == {128002}
    assert set(tokens.crop_spans) == {0, 1}
    for slot, [(s, e)] in tokens.crop_spans.items():
        assert e - s == 256 and set(tokens.input_ids[s:e]) == {CROP_TOKEN_IDS[slot]}
        assert tokens.input_ids.count(CROP_TOKEN_IDS[slot]) == 256
    assert tokens.crop_spans[0][0][0] > end
    generation_prompt = tokenizer("<|start_header_id|>assistant<|end_header_id|>\n\n", add_special_tokens=False)["input_ids"]
    assert tokens.input_ids[-len(generation_prompt) :] == generation_prompt


def test_single_bos_option(tokenizer):
    tokens = tokenize_prompt(tokenizer, PLM_CHAT_TEMPLATE, describe_region_text(), 256 * 5, double_bos=False)
    assert tokens.input_ids[:2] == [128000, 128006]
    assert tokens.crop_spans.keys() == {1}


# --- tokenizer ---------------------------------------------------------------------------


def test_tiny_tokenizer_has_the_real_special_ids(tokenizer):
    ids = tokenizer.convert_tokens_to_ids
    assert [ids(f"<Prompt{i}>") for i in range(5)] + [ids("<NO_Prompt>")] == list(range(128256, 128262))
    assert ids("<|image|>") == 128002 and ids("<|eot_id|>") == 128009 and ids("<|begin_of_text|>") == 128000
    assert [ids(f"<|reserved_special_token_{k + 2}|>") for k in range(5)] == [128004, 128005, 128008, 128010, 128011]
    assert ids("<|start_header_id|>") == 128006 and ids("<|end_header_id|>") == 128007
    assert len(tokenizer) == 128262
    assert tokenizer.eos_token_id == 128009
    text = "A red cup, ½ full — ok?"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text
    assert build_tiny_tokenizer()(text)["input_ids"] == tokenizer(text)["input_ids"]  # deterministic


def test_tiny_processor_files_load_like_a_checkpoint(tmp_path):
    write_tiny_processor_files(tmp_path, max_num_tiles=8)
    for name in ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json", "chat_template.jinja"):
        assert (tmp_path / name).is_file()
    loaded = load_tokenizer(tmp_path)
    assert loaded.convert_tokens_to_ids("<NO_Prompt>") == 128261
    assert load_chat_template(tmp_path, loaded) == PLM_CHAT_TEMPLATE
    from garvid.gar.processor import ImageConfig

    assert ImageConfig.from_checkpoint(tmp_path).max_num_tiles == 8


def test_load_tokenizer_rejects_missing_or_foreign_files(tmp_path):
    with pytest.raises(CheckpointError):
        load_tokenizer(tmp_path)
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>"))).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="GAR"):
        load_tokenizer(tmp_path)
