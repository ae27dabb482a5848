"""The package layout's rules (pyproject.toml's import-linter contracts) hold, and bite.

The contracts say: pipeline stages import only downward, every module of ``garvid``
belongs to a layer, the library never imports the CLI, and no sibling modules or packages
import each other in a cycle. The second test copies the sources, breaks one rule at a
time, and checks that ``lint-imports`` fails and names that contract as broken (an
upward import between stages also closes a cycle, so it breaks the cycle contract too).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(workdir: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200")  # one contract per report line
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)  # ahead of the editable install's finder
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=workdir, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_architecture_contracts_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


BREAKS = {
    "upward import": (
        "garvid/media/source.py",
        "from garvid.qa.answers import Answer  # noqa: F401\n",
        "Pipeline stages import only downward",
    ),
    "basics import a stage": (
        "garvid/errors.py",
        "import garvid.tracking.tracks  # noqa: F401\n",
        "Pipeline stages import only downward",
    ),
    "module outside every layer": (
        "garvid/new_stage.py",
        '"""A top-level module no layer names."""\n',
        "Pipeline stages import only downward",
    ),
    "library imports the CLI": (
        "garvid/qa/answers.py",
        "import garvid_cli.console  # noqa: F401\n",
        "The library never imports the CLI",
    ),
    "import cycle": (
        "garvid/gar/config.py",
        "import garvid.gar.tiny  # noqa: F401\n",
        "No import cycles",
    ),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_lint_imports_fails_when_a_rule_is_broken(tmp_path: Path, case: str) -> None:
    relative, line, contract = BREAKS[case]
    shutil.copytree(ROOT / "garvid", tmp_path / "garvid", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "cli", tmp_path / "garvid_cli", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    assert lint_imports(tmp_path, pythonpath=tmp_path).returncode == 0  # the copy is as clean as the tree

    target = tmp_path / relative
    target.write_text((target.read_text() if target.exists() else "") + line)
    result = lint_imports(tmp_path, pythonpath=tmp_path)
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if line.rstrip().endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), result.stdout
