"""Loading a detector checkpoint (transformers' own Grounding DINO and SAM 3 classes, from
safetensors, never remote code) and running it on one frame for one phrase.

Importing this module imports torch and transformers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers.utils import logging as hf_logging

from garvid.detection.checkpoints import DetectorSpec
from garvid.detection.selection import Candidates
from garvid.errors import CheckpointError, RegionError, first_line

#: SAM 3 queries turned into full-size masks per phrase (the best-scoring ones): enough for
#: the distinct-instance rule, without a mask per query (200 at frame size).
SAM3_TOP_QUERIES = 16


def _classes(family: str) -> tuple[Any, Any]:
    from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor, Sam3Model, Sam3Processor

    return (GroundingDinoForObjectDetection, GroundingDinoProcessor) if family == "grounding-dino" else (Sam3Model, Sam3Processor)


def phrase_text(family: str, phrase: str) -> str:
    """The text the detector reads: Grounding DINO wants lower case ending in '.', and reads
    '.' as a separator between phrases, so dots inside a phrase become spaces."""
    if family == "grounding-dino":
        return " ".join(phrase.lower().replace(".", " ").split()) + "."
    return phrase


class Detector:
    """A loaded detector on one device. Build it with :meth:`load`."""

    def __init__(self, spec: DetectorSpec, processor: Any, model: Any, device: torch.device):
        self.spec, self.processor, self.model, self.device = spec, processor, model, device

    @staticmethod
    def load_processor(spec: DetectorSpec) -> Any:
        _, processor_class = _classes(spec.family)
        try:
            return processor_class.from_pretrained(spec.path, local_files_only=True)
        except Exception as error:  # missing or broken tokenizer / image processor files
            raise CheckpointError(f"cannot read the detector's processor files in {spec.path}: {first_line(error)[:160]}") from None

    @classmethod
    def load(cls, spec: DetectorSpec, device: torch.device, phrases: list[str]) -> Detector:
        """Check ``phrases`` against the text encoder (before the weights load), then load."""
        processor = cls.load_processor(spec)
        check_phrase_lengths(spec, processor, phrases)
        model_class, _ = _classes(spec.family)
        hf_logging.disable_progress_bar()
        try:
            model = model_class.from_pretrained(spec.path, local_files_only=True, use_safetensors=True)
        except Exception as error:
            raise CheckpointError(f"cannot load detector {spec.name} from {spec.path}: {first_line(error)[:160]}") from None
        return cls(spec, processor, model.to(device).eval(), device)

    @torch.inference_mode()
    def candidates(self, image: np.ndarray, phrase: str) -> Candidates:
        """Every instance of ``phrase`` on ``image`` ``(H, W, 3)`` uint8, post-processed by transformers."""
        height, width = image.shape[:2]
        text = phrase_text(self.spec.family, phrase)
        inputs = self.processor(images=image, text=text, return_tensors="pt").to(self.device)
        if self.spec.family == "grounding-dino":
            return grounding_candidates(self.processor, self.model(**inputs), inputs["input_ids"], (height, width))
        outputs = self.model(
            pixel_values=inputs["pixel_values"], input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
        )
        return sam3_candidates(self.processor, outputs, (height, width))


def grounding_candidates(processor: Any, outputs: Any, input_ids: torch.Tensor, size: tuple[int, int]) -> Candidates:
    """Every query of a ``GroundingDinoForObjectDetection`` output, through the processor's own
    post-processing (score = the best token probability, ``xyxy`` boxes at ``size`` (H, W))."""
    result = processor.post_process_grounded_object_detection(outputs, input_ids, threshold=0.0, target_sizes=[size])[0]
    return Candidates(_numpy(result["scores"]), _numpy(result["boxes"]))


def sam3_candidates(processor: Any, outputs: Any, size: tuple[int, int]) -> Candidates:
    """The best ``SAM3_TOP_QUERIES`` queries of a ``Sam3Model`` output, through the processor's
    instance segmentation (score = query x presence probability, masks at ``size`` (H, W))."""
    result = processor.post_process_instance_segmentation(
        _top_queries(outputs, SAM3_TOP_QUERIES), threshold=0.0, mask_threshold=0.5, target_sizes=[size]
    )[0]
    return Candidates(_numpy(result["scores"]), _numpy(result["boxes"]), _numpy(result["masks"]).astype(bool))


def check_phrase_lengths(spec: DetectorSpec, processor: Any, phrases: list[str]) -> None:
    """RegionError for a phrase longer than the detector's text encoder reads (says the limit)."""
    limit = text_token_limit(spec.family, processor, spec)
    for phrase in phrases:
        ids = processor.tokenizer(phrase_text(spec.family, phrase))["input_ids"]
        if len(ids) > limit:
            raise RegionError(
                f"--object {phrase[:40]!r}{'...' if len(phrase) > 40 else ''} is {len(ids)} tokens with the "
                f"{spec.name} text encoder's markers; it reads at most {limit}: use fewer words"
            )


def text_token_limit(family: str, processor: Any, spec: DetectorSpec) -> int:
    """Tokens (markers included) the text encoder reads: Grounding DINO's ``max_text_len``;
    SAM 3's processor pads every prompt to 32 tokens, its CLIP text encoder's positions."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(spec.path, local_files_only=True)
    if family == "grounding-dino":
        return int(config.max_text_len)
    return int(config.text_config.max_position_embeddings)


def _top_queries(outputs: Any, count: int) -> Any:
    """SAM 3's output restricted to its ``count`` best-scoring queries (same structure)."""
    scores = outputs.pred_logits.sigmoid()
    if outputs.presence_logits is not None:
        scores = scores * outputs.presence_logits.sigmoid()
    keep = scores[0].topk(min(count, scores.shape[1])).indices
    return type(outputs)(
        pred_masks=outputs.pred_masks[:, keep],
        pred_boxes=outputs.pred_boxes[:, keep],
        pred_logits=outputs.pred_logits[:, keep],
        presence_logits=outputs.presence_logits,
    )


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy() if tensor.is_floating_point() else tensor.detach().cpu().numpy()


