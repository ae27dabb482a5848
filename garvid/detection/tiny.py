"""Detector checkpoints with random weights: tiny ones for tests (built once under garvid's
cache in the hub layout and loaded like real ones) and real-sized ones for benchmarks.

The tokenizers are built here too, small but of the real kinds: WordPiece with BERT's
special-token ids for Grounding DINO (its text attention masks look for ids 101, 102, 1012
and 1029), byte-level BPE with CLIP's special tokens for SAM 3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tokenizers.pre_tokenizers import ByteLevel

from garvid.files import build_folder_once
from garvid.paths import cache_root

#: Bump when the tiny layout changes, so stale cached checkpoints are not reused.
TINY_VERSION = 1

_WORDS = ("the", "a", "red", "yellow", "cup", "ball", "dog", "person", "hand", "left", "right", "of")


def bert_tokenizer():
    """A WordPiece tokenizer with bert-base-uncased's special-token ids and a small vocabulary."""
    from transformers import BertTokenizer

    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = list("abcdefghijklmnopqrstuvwxyz0123456789,'-")
    vocab += pieces + ["##" + piece for piece in pieces]
    vocab += [f"[unused{i}]" for i in range(len(vocab), 1012)] + ["."]
    vocab += [f"[unused{i}]" for i in range(len(vocab), 1029)] + ["?"]
    vocab += list(_WORDS)
    return BertTokenizer(vocab={token: index for index, token in enumerate(vocab)})


def clip_tokenizer():
    """A byte-level BPE tokenizer of CLIP's kind (every byte, with and without ``</w>``), no merges."""
    from transformers import CLIPTokenizer

    alphabet = sorted(ByteLevel.alphabet())
    tokens = [*alphabet, *(c + "</w>" for c in alphabet), "<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={token: index for index, token in enumerate(tokens)}, merges=[])


def grounding_dino_parts(size: str) -> tuple[Any, Any]:
    """``(config, processor)`` of a Grounding DINO: ``tiny`` (tests), ``swin-t`` or ``swin-b`` (real sizes)."""
    from transformers import (
        BertConfig,
        GroundingDinoConfig,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    tokenizer = bert_tokenizer()
    if size == "tiny":
        backbone = SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4, out_indices=[2, 3, 4])
        text = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
        widths = dict(d_model=32, encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_attention_heads=2, decoder_attention_heads=2)
        config = GroundingDinoConfig(
            backbone_config=backbone, text_config=text, encoder_layers=1, decoder_layers=2, num_queries=30, **widths
        )
        image_size = {"shortest_edge": 128, "longest_edge": 224}
    else:  # the published configs: Swin-T or Swin-B backbones, BERT-base text, 900 queries
        backbone = (
            SwinConfig(out_indices=[2, 3, 4])
            if size == "swin-t"
            else SwinConfig(
                embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32], window_size=12, image_size=384, out_indices=[2, 3, 4]
            )
        )
        config = GroundingDinoConfig(backbone_config=backbone, text_config=BertConfig())
        image_size = {"shortest_edge": 800, "longest_edge": 1333}
    return config, GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(size=image_size), tokenizer=tokenizer)


def sam3_parts(size: str) -> tuple[Any, Any]:
    """``(config, processor)`` of SAM 3: ``tiny`` (tests) or ``full`` (facebook/sam3's sizes)."""
    from transformers import Sam3Config, Sam3ImageProcessor, Sam3Processor

    tokenizer = clip_tokenizer()
    special = {"bos_token_id": len(tokenizer) - 2, "eos_token_id": len(tokenizer) - 1, "pad_token_id": len(tokenizer) - 1}
    if size == "tiny":
        layer = {"num_layers": 1, "num_attention_heads": 2, "intermediate_size": 64, "hidden_size": 32}
        config = Sam3Config(
            vision_config={
                "backbone_config": {
                    "model_type": "sam3_vit_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                    "num_attention_heads": 2, "image_size": 112, "patch_size": 14, "window_size": 4,
                    "global_attn_indexes": [1], "pretrain_image_size": 56,
                },
                "fpn_hidden_size": 32,
                "backbone_feature_sizes": [[32, 32], [16, 16], [8, 8]],
            },
            text_config={
                "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "projection_dim": 32,
                "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 32, **special,
            },
            geometry_encoder_config=layer,
            detr_encoder_config=layer,
            detr_decoder_config={**layer, "num_queries": 20},
            mask_decoder_config={"hidden_size": 32, "num_upsampling_stages": 3, "num_attention_heads": 2},
        )  # fmt: skip
        processor = Sam3ImageProcessor(size={"height": 112, "width": 112}, mask_size={"height": 32, "width": 32})
    else:
        config = Sam3Config(text_config={"vocab_size": 49408, **special})
        processor = Sam3ImageProcessor()
    return config, Sam3Processor(image_processor=processor, tokenizer=tokenizer)


def build_parts(family: str, size: str) -> tuple[Any, Any]:
    """``(config, processor)`` of ``family`` at ``size`` (see the two builders)."""
    return grounding_dino_parts(size) if family == "grounding-dino" else sam3_parts(size)


def random_model(family: str, config: Any, seed: int = 0) -> torch.nn.Module:
    """A randomly initialised detector of ``family``, the same for the same config and seed."""
    from transformers import GroundingDinoForObjectDetection, Sam3Model

    model_class = GroundingDinoForObjectDetection if family == "grounding-dino" else Sam3Model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_class(config).eval()


def ensure_tiny_detector(family: str, seed: int = 0, cache_dir: Path | None = None) -> Path:
    """The folder of the tiny ``family`` detector, built once (atomically) under the garvid cache."""
    from transformers.utils import logging as hf_logging

    def build(staging: Path) -> None:
        config, processor = build_parts(family, "tiny")
        hf_logging.disable_progress_bar()
        random_model(family, config, seed).save_pretrained(staging, safe_serialization=True)
        processor.save_pretrained(staging)

    root = Path(cache_dir) if cache_dir else cache_root() / "detectors"
    return build_folder_once(root / f"tiny-random-{family}-seed{seed}-v{TINY_VERSION}", "model.safetensors", build)
