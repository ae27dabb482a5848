"""Writing results: atomically to files (temp file + rename) or to stdout, and checking,
before a run does any work, that its outputs can be written and overwrite none of its inputs."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from filelock import FileLock, Timeout

from garvid.errors import GarvidError


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


#: The largest file garvid reads whole as a user's small input (a tracks JSON, a manifest, benchmark
#: annotations, a protocol): far above any real one, far below what would exhaust memory.
MAX_INPUT_BYTES = 1 << 30


def read_input(path: Path, what: str, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a file the user named (``what``: ``--tracks``, ``manifest``, ...), read whole.

    Refused in one line (GarvidError) before anything is read when it is not a regular file
    (a FIFO, a device, ``/dev/zero`` through a symlink: reading one may never end) or is larger
    than ``limit`` bytes.
    """
    try:
        status = os.stat(path)
    except OSError as error:
        raise GarvidError(f"cannot read {what} {path}: {error.strerror or error}") from None
    if not stat.S_ISREG(status.st_mode):
        real = os.path.realpath(path)
        via = f" ({real})" if real != os.path.abspath(path) else ""
        raise GarvidError(f"{what} {path}{via} is not a regular file: refusing to read it")
    if status.st_size > limit:
        raise GarvidError(f"{what} {path} holds {status.st_size} bytes, more than the {limit} garvid reads: refusing to read it")
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise GarvidError(f"cannot read {what} {path}: {error.strerror or error}") from None
    if len(data) > limit:  # it grew since
        raise GarvidError(f"{what} {path} holds more than the {limit} bytes garvid reads: refusing to read it")
    return data


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


class RunInputs:
    """The files a run reads, so that no output of the run can overwrite one.

    An input is compared by its real path (symlinks resolved) and, when it exists, by its
    inode (hard links); an input that is a folder (a frame folder, a model folder) makes
    everything inside it an input. Values that name no existing path (preset names, hub
    ids) are ignored: there is nothing on disk to overwrite.
    """

    def __init__(self, paths: Iterable[Path | str | None] = ()):
        self.files: dict[str, Path] = {}
        self.inodes: dict[tuple[int, int], Path] = {}
        self.folders: dict[str, Path] = {}
        for path in paths:
            self.add(path)

    def add(self, path: Path | str | None) -> None:
        if path is None or str(path) in ("", "-"):
            return
        path = Path(path)
        try:
            status = path.stat()
        except (OSError, ValueError):
            return
        real = os.path.realpath(path)
        (self.folders if stat.S_ISDIR(status.st_mode) else self.files)[real] = path
        self.inodes[(status.st_dev, status.st_ino)] = path

    def check(self, label: str, output: Path) -> None:
        """Refuse ``output`` (named ``label`` in the message) if it is, or lies inside, an input."""
        real = os.path.realpath(output)
        hit = self.files.get(real) or self.folders.get(real)
        try:
            status = output.stat()
            hit = hit or self.inodes.get((status.st_dev, status.st_ino))
        except (OSError, ValueError):
            pass
        if hit is not None:
            via = f" (it resolves to {real})" if real != os.path.abspath(output) else ""
            named = "" if str(hit) == str(output) else f" {hit},"
            raise GarvidError(f"{label} {output} is{named} an input of this run{via}: refusing to write over it")
        for folder, given in self.folders.items():
            if Path(real).is_relative_to(folder):
                raise GarvidError(f"{label} {output} lies inside {given}, a folder this run reads: choose another output")


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _check_writable_folder(label: str, output: Path, folder: Path) -> None:
    """``folder`` (or its nearest existing ancestor, as it will be created) must be a writable folder."""
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise GarvidError(f"cannot write {label} {output}: {existing} is not a folder")
    try:
        handle, probe = tempfile.mkstemp(prefix=".garvid-probe-", dir=existing)
    except OSError as error:
        raise GarvidError(f"cannot write {label} {output}: {existing} is not writable ({error.strerror or error})") from None
    os.close(handle)
    os.unlink(probe)


def check_output_file(label: str, path: Path, inputs: RunInputs) -> None:
    """Refuse, before any work, an output file that cannot be written or would overwrite an input."""
    if str(path) == ".":  # what an empty -o '' becomes as a Path
        raise GarvidError(f"{label} names no file (it is empty or '.')")
    if path.is_dir():
        raise GarvidError(f"{label} {path} is a folder: give a file name")
    if path.exists() and not path.is_file():
        raise GarvidError(f"{label} {path} is not a regular file (use '-o -' for stdout)")
    _check_writable_folder(label, path, path.parent)
    inputs.check(label, path)


def check_output_folder(label: str, path: Path, inputs: RunInputs) -> None:
    """Refuse, before any work, an output folder that is not a folder, cannot be written, or holds an input."""
    if path.exists() and not path.is_dir():
        raise GarvidError(f"{label} {path} is a file, not a folder: give a folder for the outputs")
    _check_writable_folder(label, path, path)
    inputs.check(label, path)


def check_outputs(outputs: Mapping[str, Path | None], inputs: Iterable[Path | str | None]) -> None:
    """Check a command's output files (``{label: path}``; None or '-' is stdout) before it starts:
    each must be writable, none may be an input of the run, and no two may be the same file."""
    known = RunInputs(inputs)
    claimed: dict[str, str] = {}
    for label, path in outputs.items():
        if path is None or str(path) == "-":
            continue
        check_output_file(label, path, known)
        real = os.path.realpath(path)
        if real in claimed:
            raise GarvidError(f"{label} and {claimed[real]} are the same file ({path}): give each its own")
        claimed[real] = label


@contextmanager
def exclusive_lock(path: Path, busy: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (an empty lock file, kept) while the block runs.

    Another process holding it gets GarvidError(``busy``) at once instead of waiting: two
    runs on one output would both do the work and overwrite each other's records. The
    operating system releases the lock when the process ends, however it ends.
    """
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise GarvidError(busy) from None
    try:
        yield
    finally:
        lock.release()
