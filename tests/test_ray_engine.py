"""``garvid batch --engine ray``: which Ray it starts or joins, failing fast, and what it prints.

Ray is pointed at a temporary folder of its own (``RAY_TMPDIR``) whose cluster file,
``ray/ray_current_cluster``, names a dead address: what ``ray start --head`` leaves behind
when the head process is gone. The machine's real Ray folder is never touched.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import pytest
from garvid_cli.main import run
from test_batch import QUESTION, TINY, folder  # noqa: F401  (folder: the batch tests' clips)

from garvid.batch.ray_engine import check_reachable, quiet_ray_output
from garvid.errors import GarvidError


@pytest.fixture
def dead_address() -> Iterator[Callable[[], str]]:
    """Local addresses nothing answers on: ports bound (so no one else takes them) but not
    listening, so connections to them are refused."""
    held: list[socket.socket] = []

    def make() -> str:
        held.append(socket.socket())
        held[-1].bind(("127.0.0.1", 0))
        return f"127.0.0.1:{held[-1].getsockname()[1]}"

    yield make
    for bound in held:
        bound.close()


@pytest.fixture
def stale_cluster(monkeypatch, dead_address) -> Iterator[str]:
    """Ray's temporary folder redirected to a fresh one whose cluster file names a dead address."""
    root = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    dead = dead_address()
    (root / "ray").mkdir()
    (root / "ray" / "ray_current_cluster").write_text(dead)
    monkeypatch.setenv("RAY_TMPDIR", str(root))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    yield dead
    shutil.rmtree(root, ignore_errors=True)


def _errors(out: Path) -> dict[str, dict]:
    return {e["id"]: e for e in map(json.loads, (out / "errors.jsonl").read_text().splitlines())}


@pytest.mark.slow
def test_local_ray_despite_a_stale_cluster_file_gives_the_local_answers_and_garvids_output(
    folder, stale_cluster, tmp_path, capsys  # noqa: F811
):
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert run(["batch", str(folder), "--question", QUESTION, "-o", str(local), *TINY]) == 1
    capsys.readouterr()
    # as in a terminal, where garvid draws its progress bars (TTY_COMPATIBLE: rich's switch)
    # the answering actor takes the items two at a time and answers them in one batch: the same answers
    args = [sys.executable, "-m", "garvid_cli", "batch", str(folder), "-q", QUESTION, "-o", str(remote), "--engine", "ray", *TINY]
    args += ["--batch-size", "2"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, env={**os.environ, "TTY_COMPATIBLE": "1"})
    err = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", done.stderr)
    assert done.returncode == 1, err
    names = sorted(p.name for p in local.glob("*.json"))
    assert names == sorted(p.name for p in remote.glob("*.json")) == ["cups_a.json", "cups_b.json"]
    for name in names:
        ours, theirs = json.loads((local / name).read_text()), json.loads((remote / name).read_text())
        assert ours["answer"] == theirs["answer"] and ours["keyframes"] == theirs["keyframes"]
        assert ours["objects"] == theirs["objects"]
    assert set(_errors(remote)) == set(_errors(local)) == {"corrupt", "no_mask"}
    # garvid's progress bar and summary, and none of Ray's own progress or log lines
    assert re.search(r"^items .*3/3", err, re.MULTILINE) and "garvid batch" in err and "│    2 │" in err, err
    assert "corrupt: " in err and "Traceback" not in err
    assert not re.search(r"\bINFO\b|\bWARNING\b|\] I |Running Dataset|Token authentication", err), err


def _fails_fast(args: list[str]) -> str:
    """The batch fails with exit 2 and one error line after the random-weights warnings, and
    in a subprocess bounded well below Ray's own wait (about 15 minutes); returns that line."""
    done = subprocess.run([sys.executable, "-m", "garvid_cli", *args], capture_output=True, text=True, timeout=180)
    *before, last = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert last.startswith("garvid: error: ") and all(line.startswith("garvid: warning: ") for line in before), before
    return last


def test_unreachable_cluster_fails_fast_before_any_item(folder, stale_cluster, dead_address, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    out.mkdir()
    (out / "errors.jsonl").write_text("earlier run\n")
    batch = ["batch", str(folder), "--question", QUESTION, "-o", str(out), "--engine", "ray", *TINY]
    dead = dead_address()
    err = _fails_fast([*batch, "--ray-address", dead])
    assert f"cannot reach the Ray cluster at {dead}" in err
    # nothing was marked failed or written: the earlier run's error log is as it was
    assert [p.name for p in out.iterdir()] == ["errors.jsonl"] and (out / "errors.jsonl").read_text() == "earlier run\n"


def test_auto_is_the_cluster_rays_files_name(stale_cluster, monkeypatch):
    from ray._private import services

    # Ray's "auto" prefers a lone running cluster on the machine to its file: no other one here
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: set())
    with pytest.raises(GarvidError, match=re.escape(f"cannot reach the Ray cluster at auto ({stale_cluster}): ")):
        check_reachable("auto")


@pytest.mark.slow
def test_ray_address_environment_variable_is_honoured(folder, stale_cluster, dead_address, tmp_path, monkeypatch):  # noqa: F811
    dead = dead_address()
    monkeypatch.setenv("RAY_ADDRESS", dead)
    batch = ["batch", str(folder), "--question", QUESTION, "-o", str(tmp_path / "out"), "--engine", "ray", *TINY]
    assert f"cannot reach the Ray cluster at {dead}" in _fails_fast(batch)
    assert not (tmp_path / "out").exists()


def test_bad_ray_options_are_one_line(folder, capsys):  # noqa: F811
    batch = ["batch", str(folder), "--question", QUESTION, *TINY]
    for extra, message in (
        (["--engine", "ray", "--ray-address", "headnode"], "not HOST:PORT"),
        (["--ray-address", "auto"], "--ray-address is for --engine ray"),
        (["--verbose"], "--verbose is for --engine ray"),
    ):
        assert run([*batch, *extra]) == 2
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert last.startswith("garvid: error: ") and message in last, last


@pytest.mark.parametrize("verbose", [False, True])
def test_ray_console_lines_only_when_verbose(verbose, capsys, monkeypatch):
    import ray.data  # noqa: F401  (sets up Ray's console handlers)
    from ray._private.log import PlainRayHandler

    # they write to the sys.stderr of their creation, which pytest swaps for every test
    for name in ("ray", "ray.data"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, PlainRayHandler):
                monkeypatch.setattr(handler, "stream", sys.stderr)
    with quiet_ray_output(verbose):
        logging.getLogger("ray.data.garvid_test").info("ray data progress line")
        logging.getLogger("ray.garvid_test").warning("ray core warning line")
        logging.getLogger("ray.data.garvid_test").error("ray data error line")
    err = capsys.readouterr().err
    assert ("ray data progress line" in err) is verbose and ("ray core warning line" in err) is verbose
    assert "ray data error line" in err
    logging.getLogger("ray.data.garvid_test").info("after the run")  # Ray's own levels are back
    assert "after the run" in capsys.readouterr().err
