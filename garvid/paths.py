"""Where garvid keeps its own files (tiny test checkpoints, tracking caches)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$GARVID_CACHE``, else ``$XDG_CACHE_HOME/garvid``, else ``~/.cache/garvid``."""
    if os.environ.get("GARVID_CACHE"):
        return Path(os.environ["GARVID_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "garvid"


def user_path(text: str | Path) -> Path:
    """A path the user typed, ``~`` and ``~user`` expanded where they name a home folder.

    ``~name`` for a user this machine does not know stays as typed (``Path.expanduser``
    raises there), so it is reported like any other missing file.
    """
    try:
        return Path(text).expanduser()
    except RuntimeError:
        return Path(text)
