"""Answer text as the reference decoded it: the tokenizer's clean-up, streamed and final alike."""

from __future__ import annotations

import pytest

from garvid.gar.answering import answer_text, answer_texts, generate_answer
from garvid.gar.tokenizer import (
    EOT_TOKEN,
    build_tiny_tokenizer,
    clean_up_tokenization,
    load_tokenizer,
    prompt_token,
    write_tiny_processor_files,
)
from garvid.options import GenerationOptions

RAW = "It 's a red cup , is n't it ? I 'm sure they 're here . We 've got ' quotes ' too !"
CLEANED = "It's a red cup, isn't it? I'm sure they're here. We've got'quotes'too!"


class _ScriptedModel:
    """Stands in for GARModel.generate: "generates" the given ids, one callback per token."""

    def __init__(self, ids: list[int]):
        self.ids = ids

    def generate(self, inputs_embeds, *, on_token=None, max_new_tokens: int, **_) -> list[int]:
        tokens = self.ids[:max_new_tokens]
        for token in tokens:
            if on_token is not None:
                on_token(token)
        return tokens


def _answer(text: str, *, clean_up: bool, max_new_tokens: int = 1024) -> tuple[str, list[str]]:
    tokenizer = build_tiny_tokenizer(clean_up=clean_up)
    model = _ScriptedModel(tokenizer(text, add_special_tokens=False)["input_ids"])
    deltas: list[str] = []
    texts, _ = generate_answer(model, tokenizer, None, GenerationOptions(max_new_tokens=max_new_tokens), lambda _i, d: deltas.append(d))
    return texts.text, deltas


def test_clean_up_is_transformers_4_56s() -> None:
    assert clean_up_tokenization(RAW) == CLEANED
    # applied in 4.56.2's order with str.replace: " ' " first eats the space " 's" would need
    assert clean_up_tokenization("a ' s b ' s") == "a's b's"


@pytest.mark.parametrize("clean_up", [True, False])
def test_answer_and_stream_follow_the_tokenizers_flag(clean_up: bool) -> None:
    answer, deltas = _answer(f"  {RAW}\n", clean_up=clean_up)
    assert answer == (CLEANED if clean_up else RAW)
    assert "".join(deltas) == answer


@pytest.mark.parametrize(
    "text", ["do n't", "cup .", "a ' b", "x  ,", pytest.param("héllo wörld 🎉 .", marks=pytest.mark.slow), "ok .\n\n", "A", " ."]
)
@pytest.mark.parametrize("clean_up", [True, False])
def test_joined_stream_is_the_final_answer_at_every_length(text: str, clean_up: bool) -> None:
    for length in range(1, len(text.encode()) + 1):  # the tiny tokenizer has one token per byte
        answer, deltas = _answer(text, clean_up=clean_up, max_new_tokens=length)
        assert "".join(deltas) == answer
    assert answer == (clean_up_tokenization(text) if clean_up else text).strip()


def test_stream_holds_back_only_what_a_later_token_can_change() -> None:
    _, deltas = _answer("the cup is here .", clean_up=True)
    # a word settles once it has three characters (no clean-up pattern can reach back past
    # them); " ." waits for the end, where the clean-up turns it into "."
    assert [d for d in deltas if d] == ["t", "h", "e", " cup", " is her", "e", "."]


def test_checkpoint_tokenizer_carries_the_flag(tmp_path) -> None:
    write_tiny_processor_files(tmp_path / "on", clean_up=True)
    write_tiny_processor_files(tmp_path / "off")
    assert load_tokenizer(tmp_path / "on").clean_up_tokenization_spaces is True
    assert load_tokenizer(tmp_path / "off").clean_up_tokenization_spaces is False


def _ids_with_region_tokens(tokenizer, parts: list[str | int]) -> list[int]:
    """Token ids of ``parts``: text tokenized as text, an int K as GAR's ``<PromptK>`` token."""
    ids: list[int] = []
    for part in parts:
        if isinstance(part, int):
            ids.append(tokenizer.convert_tokens_to_ids(prompt_token(part)))
        else:
            ids += tokenizer(part, add_special_tokens=False)["input_ids"]
    return ids


@pytest.mark.parametrize("clean_up", [True, False])
def test_region_tokens_read_as_the_objects_names(clean_up: bool) -> None:
    tokenizer = build_tiny_tokenizer(clean_up=clean_up)
    ids = _ids_with_region_tokens(tokenizer, [1, " is beside ", 0, " ; ", 3, " waves ."])
    ids.append(tokenizer.convert_tokens_to_ids(EOT_TOKEN))
    names = {0: "the red cup", 1: "object 2"}  # slot 3 holds no object: its token is dropped

    texts = answer_texts(tokenizer, ids, names)

    tidy = (lambda text: clean_up_tokenization(text).strip()) if clean_up else str.strip
    assert texts.text == tidy("object 2 is beside the red cup ; waves .")
    assert texts.raw_text == tidy("<Prompt1> is beside <Prompt0> ; <Prompt3> waves .")
    # what the reference decodes (special tokens skipped), and what benchmarks score
    assert texts.reference_text == answer_text(tokenizer, tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False))
    assert texts.reference_text == tidy(" is beside  ;  waves .")


def test_streamed_answer_names_the_objects_as_the_final_one() -> None:
    tokenizer = build_tiny_tokenizer(clean_up=True)
    model = _ScriptedModel(_ids_with_region_tokens(tokenizer, [1, " holds ", 0, " ."]))
    deltas: list[str] = []
    names = {0: "the red cup", 1: "object 2"}
    for length in range(1, len(model.ids) + 1):
        deltas.clear()
        texts, _ = generate_answer(
            model, tokenizer, None, GenerationOptions(max_new_tokens=length), lambda _i, d: deltas.append(d), names
        )
        assert "".join(deltas) == texts.text
    assert texts.text == "object 2 holds the red cup."
