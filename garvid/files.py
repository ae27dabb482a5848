"""Writing results: atomically to files (temp file + rename) or to stdout."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    A failure (or Ctrl-C) removes the temporary file, so no half-written output is left.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    temp = Path(temp_name)
    try:
        yield temp
        os.chmod(temp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def build_folder_once(target: Path, marker: str, build: Callable[[Path], None]) -> Path:
    """``target``, unless ``target/marker`` exists built by ``build(staging)`` in a staging
    folder beside it and renamed into place, so a half-built folder is never seen."""
    target = Path(target)
    if (target / marker).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        build(staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first: theirs is identical
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def write_text(text: str, path: Path | None) -> None:
    """Write ``text`` atomically to ``path``, or to stdout when ``path`` is None or '-'."""
    if path is None or str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")


def json_text(data: Any) -> str:
    """``data`` as indented JSON with one trailing newline: how garvid writes JSON files."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write_json(data: Any, path: Path | None) -> None:
    """Write ``data`` as :func:`json_text` to ``path`` or stdout."""
    write_text(json_text(data), path)
