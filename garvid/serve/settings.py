"""How ``garvid serve`` is exposed and what it accepts: checked before any model or gradio loads."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from pathlib import Path

from garvid.errors import GarvidError

#: Names that reach this machine only.
LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_credentials(text: str, where: str) -> tuple[str, str]:
    """``USER:PASSWORD`` as a pair; both parts must be non-empty (the password may hold ``:``)."""
    user, colon, password = text.strip().partition(":")
    if not colon or not user or not password:
        raise GarvidError(f"{where} must be USER:PASSWORD with neither part empty")
    return user, password


def read_auth_file(path: Path) -> list[tuple[str, str]]:
    """One ``USER:PASSWORD`` per line; blank lines and ``#`` comments skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise GarvidError(f"cannot read the auth file {path}: {getattr(error, 'strerror', None) or error}") from None
    pairs = [
        parse_credentials(line, f"line {number} of {path}")
        for number, line in enumerate(lines, 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not pairs:
        raise GarvidError(f"the auth file {path} holds no USER:PASSWORD line")
    return pairs


@dataclass(frozen=True)
class ServeSettings:
    """Where the page listens, who may use it and what it takes; refuses an exposed server without auth."""

    root: Path | None = None  # the folder the page may open videos from (resolved)
    host: str = "127.0.0.1"
    port: int = 7860
    auth: tuple[tuple[str, str], ...] = ()
    max_upload_mb: float = 500.0
    max_duration: float = 600.0  # seconds of video a page may open

    def __post_init__(self) -> None:
        if not self.auth and not is_loopback(self.host):
            raise GarvidError(f"--host {self.host} makes the page reachable from other machines: give --auth USER:PASSWORD or --auth-file")
        if not 0 <= self.port <= 65535:
            raise GarvidError(f"--port must lie in 0..65535, not {self.port}")
        for flag, value in (("--max-upload-mb", self.max_upload_mb), ("--max-duration", self.max_duration)):
            if not (math.isfinite(value) and value > 0):
                raise GarvidError(f"{flag} must be a positive number, not {value:g}")
        if self.root is not None:
            if not self.root.is_dir():
                raise GarvidError(f"--root {self.root} is not a folder")
            object.__setattr__(self, "root", self.root.resolve())

    @classmethod
    def build(cls, *, auth: str | None = None, auth_file: Path | None = None, **fields: object) -> ServeSettings:
        """Settings from the CLI's values: ``--auth`` and ``--auth-file`` add up."""
        pairs = [parse_credentials(auth, "--auth")] if auth is not None else []
        if auth_file is not None:
            pairs += read_auth_file(auth_file)
        return cls(auth=tuple(pairs), **fields)  # type: ignore[arg-type]


def confined(root: Path | None, requested: str) -> Path:
    """``requested`` (relative to ``root``) resolved, refused unless it is a file inside ``root``.

    Whatever the request says (``..``, an absolute path, a symbolic link leading out), the
    resolved path must lie under the resolved root.
    """
    if root is None:
        raise GarvidError("this server was started without --root: upload a video instead")
    target = (root / requested).resolve()
    if not target.is_relative_to(root):
        raise GarvidError(f"{requested!r} is outside the served folder")
    if not target.is_file():
        raise GarvidError(f"{requested!r} is not a file in the served folder")
    return target
