"""When and on which code a benchmark ran, for the JSON it writes.

Every ``benchmarks/bench_*.py`` starts the JSON it writes with ``**provenance()``, so a
result file says itself when it was measured and at which commit; measurements quoted in
the docs cite such files (see ``benchmarks/results/README.md``).
"""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str | None:
    """``git args`` in the repository, or None outside a checkout or without git."""
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def provenance() -> dict:
    """``date`` (ISO 8601, local time with its offset), ``commit`` (``git rev-parse HEAD``, None
    outside a checkout) and ``dirty`` (tracked files changed since that commit; None without git)."""
    commit = _git("rev-parse", "HEAD") or None
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": commit,
        "dirty": None if status is None else bool(status),
    }
