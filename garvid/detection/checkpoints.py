"""Where a detector's files come from: a preset (HF cache or download, or a tiny random
checkpoint built locally), or a local folder in the hub layout. Only resolves names and
files; loading the network is :mod:`garvid.detection.models`' job."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from garvid.errors import CheckpointError
from garvid.hub import fetch_from_hub
from garvid.presets import default_preset, get_preset, preset_names
from garvid.regions.input import RegionInput

#: config.json ``model_type`` -> detector family.
MODEL_TYPES = {"grounding-dino": "grounding-dino", "sam3": "sam3", "sam3_video": "sam3"}

#: The files a detector needs from its hub repo: configs, tokenizer, safetensors (never pickles).
HUB_FILES = ["*.json", "*.safetensors", "*.txt"]


@dataclass(frozen=True)
class DetectorSpec:
    """A detector ready to load: its family, its folder and its default threshold."""

    name: str  # preset name, or the folder as the user gave it
    family: str  # "grounding-dino" or "sam3"
    path: Path  # folder with config.json, safetensors weights and processor files
    threshold: float


def detector_name(name: str | None) -> str:
    """The preset or folder to use: ``name``, else configs/detectors.toml's default."""
    return name or default_preset("detectors")


def default_threshold(name_or_path: str) -> float:
    """The threshold of a preset, or of the first real preset of a local folder's family."""
    if name_or_path in preset_names("detectors"):
        return float(get_preset("detectors", name_or_path)["threshold"])
    family = _folder_family(Path(name_or_path))
    return float(next(get_preset("detectors", n)["threshold"] for n in _real_presets() if _family(n) == family))


def detection_settings(regions: RegionInput) -> dict[str, object]:
    """What decides the detections of ``regions``' phrases besides the phrases themselves:
    the detector, its threshold and how often it looks again, defaults resolved (part of the
    tracking cache key)."""
    name = detector_name(regions.detector)
    threshold = default_threshold(name) if regions.object_threshold is None else regions.object_threshold
    return {"detector": name, "threshold": threshold, "redetect": regions.redetect}


def check_detector(regions: RegionInput) -> None:
    """GarvidError now, before any work, for an unknown detector preset or a folder that is no
    detector (checked when given, or when ``--object`` or a threshold is; the threshold's
    range is checked by :class:`~garvid.regions.input.RegionInput` itself)."""
    if not (regions.objects or regions.detector or regions.object_threshold is not None):
        return
    name = detector_name(regions.detector)
    if Path(name).is_dir():
        _folder_family(Path(name))
    else:
        get_preset("detectors", name)


def resolve_detector(name_or_path: str | None) -> DetectorSpec:
    """A preset from ``configs/detectors.toml`` (tiny ones built on first use) or a local folder."""
    text = detector_name(name_or_path)
    if Path(text).is_dir():
        family = _folder_family(Path(text))
        return DetectorSpec(text, family, Path(text), default_threshold(text))
    preset = get_preset("detectors", text)
    threshold = float(preset["threshold"])
    if preset.get("random"):
        from garvid.detection.tiny import ensure_tiny_detector

        return DetectorSpec(text, preset["family"], ensure_tiny_detector(preset["family"], int(preset.get("seed", 0))), threshold)
    path = hub_folder(preset["hf_repo"], gated=bool(preset.get("gated")))
    return DetectorSpec(text, preset["family"], path, threshold)


def _family(name: str) -> str:
    return str(get_preset("detectors", name)["family"])


def _real_presets() -> list[str]:
    return [n for n in preset_names("detectors") if not get_preset("detectors", n).get("random")]


def _folder_family(folder: Path) -> str:
    config = folder / "config.json"
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        model_type = None
    if model_type not in MODEL_TYPES:
        raise CheckpointError(
            f"{folder} is not a detector checkpoint: its config.json must name a Grounding DINO or SAM 3 model "
            f"(model_type {', '.join(MODEL_TYPES)}); known presets: {', '.join(preset_names('detectors'))}"
        )
    return MODEL_TYPES[model_type]


def _complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def hub_folder(repo: str, *, gated: bool = False) -> Path:
    """The repo's snapshot from the Hugging Face cache, downloading it once when online."""
    from huggingface_hub import snapshot_download

    path, reason = fetch_from_hub(snapshot_download, repo, allow_patterns=HUB_FILES, usable=_complete)
    if path is not None:
        return path
    access = (
        f"{repo} is gated: request access on its Hugging Face page (huggingface.co/{repo}), log in with "
        f"`hf auth login`, then " if gated else ""
    )
    raise CheckpointError(
        f"detector {repo} is not in the Hugging Face cache and could not be downloaded ({reason}); "
        f"{access}get it with `hf download {repo}`, or pass a local folder to --detector"
    )
