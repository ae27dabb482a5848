"""Where a tracker's weights come from: a preset (HF cache or download), a local file, or none.

Only resolves names and files; building the network is :mod:`garvid.tracking.model`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from garvid.errors import CheckpointError
from garvid.hub import fetch_from_hub
from garvid.presets import get_preset, preset_names


@dataclass(frozen=True)
class TrackerSpec:
    """Everything needed to build one SAM2 video predictor."""

    name: str  # preset name, or the checkpoint's file name
    config: str  # config name inside the sam2 package, e.g. configs/sam2.1/sam2.1_hiera_t.yaml
    checkpoint: Path | None  # None: random initialisation (test presets)
    image_size: int | None = None  # override of the config's input size
    seed: int = 0  # for random initialisation


def resolve_tracker(name_or_path: str | Path, config: str | None = None) -> TrackerSpec:
    """A preset name from ``configs/trackers.toml`` or a local SAM2 ``.pt`` checkpoint.

    ``config`` names the architecture of a local checkpoint: a tracker preset name
    (``sam2.1-base-plus``) or a sam2 config name (``configs/sam2.1/sam2.1_hiera_b+.yaml``).
    Without it (as on the command line, which has no such option), the checkpoint's file
    name must match a preset's (``sam2.1_hiera_tiny.pt``).
    """
    text = str(name_or_path)
    if Path(text).suffix == ".pt" or Path(text).is_file():
        return _local_spec(Path(text), config)
    if config is not None:
        raise CheckpointError(f"config only applies to a local .pt checkpoint, not to preset {text!r}: leave config out")
    preset = get_preset("trackers", text)
    if preset.get("backend", "sam2") != "sam2":
        raise CheckpointError(f"tracker preset {text!r} is for backend {preset['backend']!r}, not sam2: build it with make_tracker")
    if preset.get("random"):
        return TrackerSpec(text, preset["config"], None, preset.get("image_size"), int(preset.get("seed", 0)))
    return TrackerSpec(text, preset["config"], hub_checkpoint(preset["hf_repo"], preset["checkpoint"]))


def _local_spec(path: Path, config: str | None) -> TrackerSpec:
    if not path.is_file():
        raise CheckpointError(f"SAM2 checkpoint not found: {path}")
    if config is None:
        matches = [
            name for name in preset_names("trackers") if get_preset("trackers", name).get("checkpoint") == path.name
        ]
        if not matches:
            raise CheckpointError(
                f"cannot tell which SAM2 model {path.name} is: garvid knows a local checkpoint by its file name, "
                f"so keep the name SAM2 released it under ({', '.join(released_checkpoint_names())}), "
                f"or use a preset ({', '.join(_real_presets())})"
            )
        config = matches[0]
    if config in preset_names("trackers"):
        preset = get_preset("trackers", config)
        return TrackerSpec(path.name, preset["config"], path, preset.get("image_size"))
    return TrackerSpec(path.name, config, path)


def _real_presets() -> list[str]:
    return [name for name in preset_names("trackers") if not get_preset("trackers", name).get("random")]


def released_checkpoint_names() -> list[str]:
    """The file names of the real presets' checkpoints (how a local ``.pt`` is recognised)."""
    return [str(get_preset("trackers", name)["checkpoint"]) for name in _real_presets() if "checkpoint" in get_preset("trackers", name)]


def hub_checkpoint(repo: str, filename: str) -> Path:
    """The checkpoint from the Hugging Face cache, downloading it once when online."""
    from huggingface_hub import hf_hub_download

    path, reason = fetch_from_hub(hf_hub_download, repo, filename)
    if path is not None:
        return path
    raise CheckpointError(
        f"SAM2 checkpoint {filename} is not in the Hugging Face cache and could not be downloaded "
        f"({reason}); get it with `hf download {repo} {filename}` "
        f"(or `huggingface-cli download {repo} {filename}`), or pass a local .pt file to --tracker"
    )
