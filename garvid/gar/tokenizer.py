"""GAR's tokenizer: PerceptionLM's Llama-3 tokenizer plus GAR's region tokens.

Token ids GAR depends on (PLM's converter renames Llama-3's reserved tokens 0/1 to
``<|image|>``/``<|video|>`` and keeps the other 254 special tokens in Llama-3's order):

=========================================  ==============================================
``<|begin_of_text|>`` / ``<|end_of_text|>``  128000 / 128001
``<|image|>`` / ``<|video|>``                128002 / 128003
``<|start_header_id|>`` / ``<|end_header_id|>``  128006 / 128007
``<|eot_id|>``                               128009 (end of turn: generation stops here)
crop token of ``<PromptK>``                  ``<|reserved_special_token_{K+2}|>``:
                                             128004, 128005, 128008, 128010, 128011
``<Prompt0>``..``<Prompt4>``, ``<NO_Prompt>``  128256..128261 (added by GAR)
=========================================  ==============================================

:func:`build_tiny_tokenizer` makes a small byte-level tokenizer with those exact special
ids for tests and the ``tiny-random`` model; :func:`write_tiny_processor_files` lays out a
folder that looks like a real checkpoint's processor files.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from garvid.errors import CheckpointError

NUM_PROMPTS = 5
IMAGE_TOKEN = "<|image|>"
EOT_TOKEN = "<|eot_id|>"
BOS_TOKEN = "<|begin_of_text|>"

# PerceptionLM's special tokens, ids 128000.. in this order (Llama-3 layout, PLM names).
_PLM_SPECIAL_TOKENS = (
    [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|image|>",
        "<|video|>",
        "<|reserved_special_token_2|>",
        "<|reserved_special_token_3|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|reserved_special_token_4|>",
        "<|eot_id|>",
    ]
    + [f"<|reserved_special_token_{i}|>" for i in range(5, 251)]
)
FIRST_SPECIAL_ID = 128000
PROMPT_TOKENS = [f"<Prompt{i}>" for i in range(NUM_PROMPTS)] + ["<NO_Prompt>"]
FIRST_PROMPT_ID = 128256


def prompt_token(index: int) -> str:
    """``<PromptK>``: names region K in the text."""
    return f"<Prompt{index}>"


def crop_token(index: int) -> str:
    """The token repeated where region K's replayed features go."""
    return f"<|reserved_special_token_{index + 2}|>"


def expected_token_ids() -> dict[str, int]:
    """Every token whose id GAR's weights depend on, with that id."""
    ids = {token: FIRST_SPECIAL_ID + i for i, token in enumerate(_PLM_SPECIAL_TOKENS)}
    wanted = {t: ids[t] for t in (BOS_TOKEN, "<|end_of_text|>", IMAGE_TOKEN, "<|start_header_id|>", "<|end_header_id|>", EOT_TOKEN)}
    wanted.update({crop_token(k): ids[crop_token(k)] for k in range(NUM_PROMPTS)})
    wanted.update({token: FIRST_PROMPT_ID + i for i, token in enumerate(PROMPT_TOKENS)})
    return wanted


CROP_TOKEN_IDS = [expected_token_ids()[crop_token(k)] for k in range(NUM_PROMPTS)]
IMAGE_TOKEN_ID = FIRST_SPECIAL_ID + _PLM_SPECIAL_TOKENS.index(IMAGE_TOKEN)
EOT_TOKEN_ID = FIRST_SPECIAL_ID + _PLM_SPECIAL_TOKENS.index(EOT_TOKEN)
BOS_TOKEN_ID = FIRST_SPECIAL_ID


def validate_tokenizer(tokenizer, source: str) -> None:
    """Raise CheckpointError unless every GAR token has the id the weights expect."""
    for token, expected in expected_token_ids().items():
        actual = tokenizer.convert_tokens_to_ids(token)
        if actual != expected:
            raise CheckpointError(
                f"tokenizer in {source} maps {token} to {actual}, but GAR expects {expected}: "
                "the checkpoint's tokenizer files do not belong to a GAR model"
            )


# transformers 4.56.2's ``clean_up_tokenization`` (the version the released checkpoints ran
# with), applied in this order by ``str.replace``. transformers 5 skips it for BPE tokenizers.
_CLEAN_UP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))
#: Longest pattern of :data:`_CLEAN_UP` minus one: how far back a later token can still change the text.
CLEAN_UP_REACH = max(len(pattern) for pattern, _ in _CLEAN_UP) - 1


def clean_up_tokenization(text: str) -> str:
    """Remove the spaces transformers 4.x removed when a tokenizer asked for clean-up."""
    for pattern, replacement in _CLEAN_UP:
        text = text.replace(pattern, replacement)
    return text


def wants_clean_up(tokenizer) -> bool:
    """Whether the checkpoint's tokenizer sets ``clean_up_tokenization_spaces`` (GAR's does).

    garvid then applies :func:`clean_up_tokenization` itself: transformers 5.x ignores the
    flag for byte-level BPE tokenizers, 4.56.2 (the reference's) did not.
    """
    return bool(getattr(tokenizer, "clean_up_tokenization_spaces", False))


def load_tokenizer(checkpoint_dir: str | Path):
    """The checkpoint's fast tokenizer (``tokenizer.json``, local files only), validated.

    GAR's tokenizer is Llama 3's byte-level BPE plus added tokens, so it loads as a plain
    ``PreTrainedTokenizerFast``; going through AutoTokenizer would read the GAR
    ``config.json`` (and its remote-code pointer) for nothing.
    """
    from transformers import PreTrainedTokenizerFast

    directory = Path(checkpoint_dir)
    if not (directory / "tokenizer.json").is_file():
        raise CheckpointError(f"{directory} has no tokenizer.json")
    try:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(directory, local_files_only=True)
    except Exception as error:  # transformers raises many types for broken files
        raise CheckpointError(f"cannot load the tokenizer in {directory}: {error}") from None
    validate_tokenizer(tokenizer, str(directory))
    return tokenizer


# --- PerceptionLM's chat template --------------------------------------------------------

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful language and vision assistant. You are able to understand the visual content "
    "that the user provides, and assist the user with a variety of tasks using natural language."
)

# PerceptionLM's chat template as its processor ships it (one string; the Jinja whitespace
# control makes the rendered text independent of the line breaks written here).
PLM_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "    {%- set system_message = messages[0]['content']|trim %}\n"
    "    {%- set messages = messages[1:] %}\n"
    "{%- else %}"
    "    {%- set system_message = '" + DEFAULT_SYSTEM_PROMPT + "' %}"
    "{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- system_message }}"
    "{{- '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{%- for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<|image|>' }}"
    "{%- endfor %}"
    "{%- for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<|video|>' }}"
    "{%- endfor %}"
    "{%- for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{- content['text'] | trim }}"
    "{%- endfor %}"
    "{{'<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)


def load_chat_template(checkpoint_dir: str | Path, tokenizer=None) -> str:
    """The checkpoint's chat template, from wherever its processor/tokenizer saved it.

    Looks at ``chat_template.jinja``, ``chat_template.json``, ``processor_config.json``,
    ``tokenizer_config.json`` and the loaded tokenizer, in that order; falls back to
    PerceptionLM's own template (:data:`PLM_CHAT_TEMPLATE`), which GAR's processor inherits.
    """
    directory = Path(checkpoint_dir)
    jinja = directory / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    for name in ("chat_template.json", "processor_config.json", "tokenizer_config.json"):
        path = directory / name
        if path.is_file():
            try:
                template = json.loads(path.read_text(encoding="utf-8")).get("chat_template")
            except (OSError, json.JSONDecodeError) as error:
                raise CheckpointError(f"cannot read {path}: {error}") from None
            if isinstance(template, str) and template:
                return template
    template = getattr(tokenizer, "chat_template", None)
    return template if isinstance(template, str) and template else PLM_CHAT_TEMPLATE


# --- the tiny tokenizer ------------------------------------------------------------------


@cache
def _tiny_tokenizer_json() -> str:
    """A byte-level BPE with no merges whose special tokens sit on PLM/GAR's real ids.

    Ids 0..255 are the 256 byte symbols, so any text encodes (one token per byte); ids
    256..127999 are filler words (never produced by encoding, decodable to `` t<N>``)
    so that the special tokens land on 128000..128261 exactly like the real vocabulary.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from tokenizers.pre_tokenizers import ByteLevel

    vocab = {symbol: i for i, symbol in enumerate(sorted(ByteLevel.alphabet()))}
    vocab.update({f"Ġt{i}": i for i in range(len(vocab), FIRST_SPECIAL_ID)})
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(_PLM_SPECIAL_TOKENS + PROMPT_TOKENS)
    tokenizer.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{BOS_TOKEN} $A",
                pair=f"{BOS_TOKEN}:0 $A:0 {BOS_TOKEN}:1 $B:1",
                special_tokens=[(BOS_TOKEN, BOS_TOKEN_ID)],
            ),
        ]
    )
    return tokenizer.to_str()


def build_tiny_tokenizer(*, clean_up: bool = False):
    """A deterministic tiny fast tokenizer carrying GAR's real special-token ids and PLM's chat template.

    ``clean_up`` sets ``clean_up_tokenization_spaces`` (True in the released checkpoints).
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tiny_tokenizer_json()),
        bos_token=BOS_TOKEN,
        eos_token=EOT_TOKEN,
        pad_token="<|end_of_text|>",
        extra_special_tokens={"image_token": IMAGE_TOKEN, "video_token": "<|video|>"},
        model_input_names=["input_ids", "attention_mask"],
        clean_up_tokenization_spaces=clean_up,
    )
    tokenizer.chat_template = PLM_CHAT_TEMPLATE
    validate_tokenizer(tokenizer, "the tiny tokenizer")
    return tokenizer


def write_tiny_processor_files(directory: str | Path, *, max_num_tiles: int = 16, clean_up: bool = False) -> None:
    """Write tokenizer files, ``preprocessor_config.json``, ``processor_config.json`` and
    ``chat_template.jinja`` so a tiny checkpoint folder looks like a real GAR one."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    build_tiny_tokenizer(clean_up=clean_up).save_pretrained(directory)
    (directory / "chat_template.jinja").write_text(PLM_CHAT_TEMPLATE, encoding="utf-8")
    preprocessor = {
        "image_processor_type": "PerceptionLMImageProcessorFast",
        "processor_class": "PerceptionLMProcessor",
        "vision_input_type": "thumb+tile",
        "tile_size": 448,
        "max_num_tiles": max_num_tiles,
        "max_frame_tiles": 1,
        "size": {"height": 448, "width": 448},
        "resample": 3,
        "do_resize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "do_convert_rgb": True,
    }
    processor = {"processor_class": "PerceptionLMProcessor", "patch_size": 14, "pooling_ratio": 2}
    for name, data in (("preprocessor_config.json", preprocessor), ("processor_config.json", processor)):
        (directory / name).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
