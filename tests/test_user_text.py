"""User text is text: what a user types never becomes a control token (issue: questions
containing ``<|eot_id|>``, ``<|image|>`` or ``<|reserved_special_token_2|>``), and holding it
as plain text changes nothing for ordinary questions.

The checks run on the tiny byte-level tokenizer and on a BPE tokenizer with merges and
Llama-3's pre-tokenizer trained here, where splitting text at the wrong place would show.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from garvid.gar.prompt import (
    encode_prompt,
    plain,
    plan_question,
    region_question_text,
    render_chat,
    tokenize_prompt,
    visible_text,
)
from garvid.gar.tokenizer import (
    _PLM_SPECIAL_TOKENS,
    BOS_TOKEN,
    EOT_TOKEN,
    FIRST_SPECIAL_ID,
    IMAGE_TOKEN_ID,
    PLM_CHAT_TEMPLATE,
    PROMPT_TOKENS,
    build_tiny_tokenizer,
)
from garvid.qa.protocol import load_protocol
from garvid.qa.temporal_text import KeyframeLayout, temporal_text

# Llama-3's pre-tokenizer split (tokenizer.json of Meta-Llama-3 and PerceptionLM).
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CORPUS = [
    "What does the person on the left do to the red cup? They pick it up and put it down again.",
    "Describe this masked region in detail. The dog's tail wags; it isn't sitting, it's running!",
    "Frame 12 at 3.5s: 1234567 apples, 89 oranges -- and (A) yes (B) no (C) maybe.",
    "    indented lines\n\nwith blank lines\r\nand tabs\tand émojis 🎉 and ünïcødé.",
]
HOSTILE = [*_PLM_SPECIAL_TOKENS[:12], *PROMPT_TOKENS[5:], "<|reserved_special_token_250|>"]


def merges_tokenizer() -> PreTrainedTokenizerFast:
    """A small BPE with merges, Llama-3's split and byte-level pieces, and PLM/GAR's added
    tokens on their real ids (the vocabulary is padded to 128000 like the tiny tokenizer's)."""
    split = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trained = Tokenizer(models.BPE())
    trained.pre_tokenizer = split
    trainer = trainers.BpeTrainer(vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    trained.train_from_iterator(CORPUS * 20, trainer)
    model = json.loads(trained.to_str())["model"]
    vocab = dict(model["vocab"])
    vocab.update({f"<filler{i}>": i for i in range(len(vocab), FIRST_SPECIAL_ID)})
    merges = [tuple(merge) if isinstance(merge, list) else tuple(merge.split(" ")) for merge in model["merges"]]
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True))
    backend.pre_tokenizer = split
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(_PLM_SPECIAL_TOKENS)
    backend.add_tokens(PROMPT_TOKENS)  # GAR's region tokens as plain added tokens: the stricter case
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", special_tokens=[(BOS_TOKEN, backend.token_to_id(BOS_TOKEN))]
    )
    assert backend.token_to_id("<|image|>") == IMAGE_TOKEN_ID and backend.token_to_id(PROMPT_TOKENS[0]) == 128256
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=BOS_TOKEN, eos_token=EOT_TOKEN)


TOKENIZERS = {"tiny": build_tiny_tokenizer(), "merges": merges_tokenizer()}

ordinary_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from(list(" \n\t'.,?!0123456789")),
    min_size=1,
    max_size=60,
).filter(lambda text: text.strip() and not any(token in text for token in HOSTILE + PROMPT_TOKENS))


def question_prompt(question: str) -> str:
    plan = plan_question([1, 2], question)
    return region_question_text(sorted(plan.slot_objects), plan.prompt_question)


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(question=ordinary_text)
def test_ordinary_questions_tokenize_exactly_as_before(name: str, question: str) -> None:
    """The reference tokenizes the whole rendered chat at once; plain pieces must not change a token."""
    tokenizer = TOKENIZERS[name]
    user_text = question_prompt(question)
    tokens = tokenize_prompt(tokenizer, PLM_CHAT_TEMPLATE, user_text, 4)
    whole = render_chat(tokenizer, PLM_CHAT_TEMPLATE, visible_text(user_text)).replace("<|image|>", "<|image|>" * 4)
    assert tokens.input_ids == tokenizer(whole)["input_ids"]
    assert tokens.text == render_chat(tokenizer, PLM_CHAT_TEMPLATE, visible_text(user_text))


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
@settings(max_examples=300, deadline=None)
@given(text=ordinary_text | st.text(max_size=40))
def test_plain_text_round_trips(name: str, text: str) -> None:
    """A plain piece decodes back to exactly what was typed, whatever it contains."""
    tokenizer = TOKENIZERS[name]
    assert visible_text("a" + plain(text) + "b") == "a" + text + "b"
    ids = encode_prompt(tokenizer, plain(text))
    assert tokenizer.decode(ids) == text
    assert not set(ids) & set(tokenizer.get_added_vocab().values())


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
@settings(max_examples=200, deadline=None)
@given(before=ordinary_text, token=st.sampled_from(HOSTILE), after=ordinary_text)
def test_special_token_text_in_a_question_is_plain_text(name: str, before: str, token: str, after: str) -> None:
    tokenizer = TOKENIZERS[name]
    clean = tokenize_prompt(tokenizer, PLM_CHAT_TEMPLATE, question_prompt(before + after), 4)
    hostile = tokenize_prompt(tokenizer, PLM_CHAT_TEMPLATE, question_prompt(before + token + after), 4)
    added = set(tokenizer.get_added_vocab().values())
    assert [i for i in hostile.input_ids if i in added] == [i for i in clean.input_ids if i in added]
    assert hostile.image_spans == clean.image_spans
    assert token in hostile.text


@pytest.mark.parametrize("token", ["<|image|>", "<|eot_id|>", "<|reserved_special_token_2|>", "<|video|>"])
def test_temporal_prompt_keeps_user_text_plain(token: str) -> None:
    tokenizer = TOKENIZERS["tiny"]
    protocol = load_protocol(None)
    layouts = [KeyframeLayout(0.0, replayed=(0,)), KeyframeLayout(1.0, replayed=(0,))]
    plan = plan_question([1], f"what is {token} object 1 doing?")
    tokens = tokenize_prompt(tokenizer, PLM_CHAT_TEMPLATE, temporal_text(protocol.text, [0], layouts, plan.prompt_question), 8, leading_images=0)
    assert len(tokens.image_spans) == 2 and tokens.input_ids.count(IMAGE_TOKEN_ID) == 16
    assert tokens.input_ids.count(tokenizer.convert_tokens_to_ids(EOT_TOKEN)) == 2  # system and user turns only
    assert len(tokens.crop_spans[0]) == 2 and set(tokens.crop_spans) == {0}
    assert f"what is {token} <Prompt0> doing?" in tokens.text


@pytest.mark.parametrize("token", ["<|image|>", "<|eot_id|>", "<|begin_of_text|>", "<|reserved_special_token_2|>", "<NO_Prompt>"])
def test_image_command_answers_questions_with_token_text(tmp_path, capsys, token: str) -> None:
    """Through the CLI: such a question used to crash (placeholder count, a traceback) or inject tokens."""
    from garvid_cli.main import run
    from PIL import Image

    image, mask = tmp_path / "frame.png", tmp_path / "mask.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(image)
    labels = np.zeros((96, 128), dtype=np.uint8)
    labels[20:60, 30:90] = 1
    Image.fromarray(labels, mode="L").save(mask)
    question = f"is {token} object 1 red?"
    target = tmp_path / "answer.json"
    args = ["image", str(image), "-m", str(mask), question, "--model", "tiny-random", "--device", "cpu"]
    code = run([*args, "--max-new-tokens", "2", "--format", "json", "-o", str(target)])
    err = capsys.readouterr().err
    assert code == 0, err
    data = json.loads(target.read_text())
    assert data["question"] == question and data["prompt_question"] == f"is {token} <Prompt0> red?"
