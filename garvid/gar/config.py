"""GAR checkpoint configuration: ``config.json`` with ``model_type: "GAR"``.

The released checkpoints nest a complete PerceptionLM config under ``mllm_config`` and add
the visual-prompt settings. garvid reads those fields itself (the hub's remote code is
never run); unknown keys are kept so that a config writes back as it was read, except
``auto_map``, which only points at remote code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import PerceptionLMConfig

from garvid.errors import CheckpointError
from garvid.gar.tokenizer import CROP_TOKEN_IDS

MODEL_TYPE = "GAR"
# Crop token of <PromptK> is <|reserved_special_token_{K+2}|>: the ids come from the token names.
DEFAULT_CROP_TOKEN_IDS = tuple(CROP_TOKEN_IDS)
_OWN_KEYS = {"model_type", "mllm_config", "prompt_numbers", "crop_tokens_ids", "kernel_size", "auto_map"}


@dataclass
class GARConfig:
    """What the GAR weights expect: the PerceptionLM config plus visual-prompt settings."""

    mllm: PerceptionLMConfig
    prompt_numbers: int = 5
    crop_tokens_ids: tuple[int, ...] = DEFAULT_CROP_TOKEN_IDS
    kernel_size: tuple[int, int] = (14, 14)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.crop_tokens_ids) != self.prompt_numbers:
            raise CheckpointError(
                f"GAR config has {len(self.crop_tokens_ids)} crop tokens for {self.prompt_numbers} prompts"
            )

    @property
    def vision_width(self) -> int:
        """Channels of the vision tower's patch embeddings (the mask embedding's output)."""
        return int(self.mllm.vision_config.model_args["embed_dim"])

    @property
    def tied_embeddings(self) -> bool:
        """The LM head shares the input embedding (GAR-1B's Llama-3.2-1B does).

        transformers 4.56, which made the checkpoints, ties by the text config's
        ``tie_word_embeddings``; transformers 5 looks at the top-level PerceptionLM config,
        which 4.56 configs leave at its default. garvid follows 4.56.
        """
        return bool(getattr(self.mllm.text_config, "tie_word_embeddings", False))

    @property
    def image_token_id(self) -> int:
        return int(self.mllm.image_token_id)

    @property
    def no_prompt_id(self) -> int:
        """Mask-map value outside every region (``<NO_Prompt>``)."""
        return self.prompt_numbers

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GARConfig:
        if data.get("model_type") != MODEL_TYPE or "mllm_config" not in data:
            raise CheckpointError(
                f"not a GAR config (model_type {data.get('model_type')!r}); expected model_type 'GAR' with mllm_config"
            )
        mllm = dict(data["mllm_config"])
        mllm.pop("model_type", None)
        kernel = data.get("kernel_size", (14, 14))
        return cls(
            mllm=PerceptionLMConfig(**mllm),
            prompt_numbers=int(data.get("prompt_numbers", 5)),
            crop_tokens_ids=tuple(int(i) for i in data.get("crop_tokens_ids", DEFAULT_CROP_TOKEN_IDS)),
            kernel_size=(int(kernel[0]), int(kernel[1])),
            extra={k: v for k, v in data.items() if k not in _OWN_KEYS},
        )

    @classmethod
    def from_file(cls, path: Path) -> GARConfig:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise CheckpointError(f"cannot read GAR config {path}: {error}") from None
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "model_type": MODEL_TYPE,
            "mllm_config": self.mllm.to_dict(),
            "prompt_numbers": self.prompt_numbers,
            "crop_tokens_ids": list(self.crop_tokens_ids),
            "kernel_size": list(self.kernel_size),
        }

    def save(self, directory: Path) -> None:
        (Path(directory) / "config.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
