"""Fetching from the Hugging Face hub: the local cache first, then (when online) a download,
with the hub client's retry warnings kept off the terminal (garvid's own error follows)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable


def fetch_from_hub(
    download: Callable[..., str], *args: Any, usable: Callable[[Path], bool] = Path.exists, **kwargs: Any
) -> tuple[Path | None, str]:
    """``download(*args, **kwargs)`` (``hf_hub_download``, ``snapshot_download``) from the
    cache, else online: ``(path, "")``, or ``(None, reason)`` with a one-line reason.

    ``usable`` checks what came back (a snapshot may lack the files that matter).
    """
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = Path(download(*args, local_files_only=True, **kwargs))
        if usable(path):
            return path, ""
    except LocalEntryNotFoundError:
        pass
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    try:
        path = Path(download(*args, **kwargs))
        return (path, "") if usable(path) else (None, "the download lacks the files needed")
    except LocalEntryNotFoundError:  # what the hub client raises when it cannot connect
        return None, "the Hugging Face Hub is unreachable or HF_HUB_OFFLINE is set"
    except Exception as error:  # gated repo, disk full, ...: all end the same way for the user
        return None, (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
    finally:
        hub_logger.setLevel(level)
