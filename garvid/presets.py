"""Named presets from ``configs/*.toml`` (model, tracker and protocol presets).

The TOML files are data only; each table is one preset. ``configs/`` ships inside the
wheel as the ``garvid_configs`` package, and is read from the source tree in a checkout.
"""

from __future__ import annotations

import importlib.util
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from garvid.errors import GarvidError


def configs_dir() -> Path:
    """The folder holding garvid's TOML configs (namespace package ``garvid_configs``)."""
    spec = importlib.util.find_spec("garvid_configs")
    locations = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    for location in locations:
        if location.is_dir():
            return location
    raise GarvidError("garvid's configs/ folder is missing: reinstall garvid")


@cache
def _load(kind: str) -> dict[str, Any]:
    return tomllib.loads((configs_dir() / f"{kind}.toml").read_text(encoding="utf-8"))


def preset_names(kind: str) -> list[str]:
    """Names of the presets in ``configs/{kind}.toml``."""
    return [name for name, value in _load(kind).items() if isinstance(value, dict)]


def default_preset(kind: str) -> str:
    """The preset named by the file's top-level ``default`` key."""
    return str(_load(kind)["default"])


def get_preset(kind: str, name: str) -> dict[str, Any]:
    """A copy of preset ``name`` from ``configs/{kind}.toml``; a clear error if unknown."""
    table = _load(kind).get(name)
    if not isinstance(table, dict):
        known = ", ".join(preset_names(kind))
        raise GarvidError(f"unknown {kind[:-1]} preset {name!r}; known presets: {known} (or give a local path)")
    return dict(table, name=name)


def random_weights_warning(name: str, kind: str = "models") -> str | None:
    """What to tell the user about a preset with random weights (``meaningless_output``),
    or None for real weights and paths."""
    if name not in preset_names(kind) or not get_preset(kind, name).get("meaningless_output"):
        return None
    output = {"models": "text is", "detectors": "detections are"}.get(kind, "masks are")
    return f"{name} has random weights: its {output} meaningless (for tests, smoke checks and benchmarks)"
