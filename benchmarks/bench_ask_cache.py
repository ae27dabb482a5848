"""``garvid ask`` twice on the same clip and objects: cold (tracks) versus cached (reuses tracks).

Each repeat runs the cold and the cached case side by side, with the tiny-random GAR and
a random tracker (``tiny-random``: hiera-tiny at 256 px, the test model; or
``sam2.1-tiny-random``: hiera-tiny at its real 1024 px, the real tracking cost): once as the CLI in a fresh process (what a user waits for, interpreter and
imports included) and once in-process through :func:`garvid.qa.video_answering.answer_video`
(models loaded inside the timed call, as the CLI does). The cold case starts from an
empty cache folder; the cached case reuses the entry the cold case wrote. Medians and
the cold/cached ratio are printed and written as JSON.

    .venv/bin/python benchmarks/bench_ask_cache.py                 # cups.mp4, 8 keyframes, 3 repeats
    .venv/bin/python benchmarks/bench_ask_cache.py --repeats 5 --frames 16
    .venv/bin/python benchmarks/bench_ask_cache.py --tracker sam2.1-tiny-random --repeats 1 --json benchmarks/results/ask_cache_1024.json
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from rich.console import Console
from rich.table import Table

from garvid.files import write_json
from garvid.options import GenerationOptions
from garvid.qa.request import VideoRequest
from garvid.qa.video_answering import answer_video
from garvid.regions.input import RegionInput

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"
DEFAULT_JSON = REPO / "benchmarks" / "results" / "ask_cache.json"
QUESTION = "what does object 2 do to object 1?"


def cli_seconds(args: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "garvid_cli", *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"garvid failed: {done.stderr.strip()}")
    return elapsed


def library_seconds(request: VideoRequest, expect_cached: bool) -> float:
    started = time.perf_counter()
    result = answer_video(request)
    elapsed = time.perf_counter() - started
    if result.tracker["cached"] is not expect_cached:
        raise SystemExit(f"expected cached={expect_cached}, got {result.tracker['cached']}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=MEDIA / "cups.mp4")
    parser.add_argument("--mask", type=Path, default=MEDIA / "cups_first_frame.png")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--tracker", default="tiny-random", help="tracker preset: tiny-random (256 px) or sam2.1-tiny-random (1024 px, the real cost)"
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="garvid-bench-"))
    tiny = ["--model", "tiny-random", "--tracker", options.tracker, "--device", "cpu"]
    settings = ["--frames", str(options.frames), "--max-new-tokens", str(options.max_new_tokens), "--format", "json"]
    times: dict[str, list[float]] = {"cli_cold": [], "cli_cached": [], "library_cold": [], "library_cached": []}
    # one untimed run builds the tiny checkpoints and warms the file cache
    cli_seconds(["ask", str(options.clip), QUESTION, "--mask", str(options.mask), *tiny, *settings, "--no-cache"])
    for repeat in range(options.repeats):
        cache = work / f"cli-{repeat}"
        args = ["ask", str(options.clip), QUESTION, "--mask", str(options.mask), *tiny, *settings, "--cache-dir", str(cache)]
        times["cli_cold"].append(cli_seconds(args))
        times["cli_cached"].append(cli_seconds(args))
        request = VideoRequest(
            video=options.clip,
            regions=RegionInput(masks=(options.mask,)),
            question=QUESTION,
            frames=options.frames,
            model="tiny-random",
            tracker=options.tracker,
            device="cpu",
            generation=GenerationOptions(max_new_tokens=options.max_new_tokens),
            cache_dir=work / f"library-{repeat}",
        )
        times["library_cold"].append(library_seconds(request, expect_cached=False))
        times["library_cached"].append(library_seconds(request, expect_cached=True))
    shutil.rmtree(work, ignore_errors=True)

    medians = {name: median(values) for name, values in times.items()}
    title = f"garvid ask, cold vs cached tracks ({options.clip.name}, {options.frames} keyframes, tiny GAR, {options.tracker} tracker)"
    table = Table(title=title)
    for column in ("path", "cold s (median)", "cached s (median)", "cold / cached"):
        table.add_column(column, justify="right" if column != "path" else "left")
    ratios = {}
    for path in ("cli", "library"):
        cold, cached = medians[f"{path}_cold"], medians[f"{path}_cached"]
        ratios[path] = cold / cached
        table.add_row(path, f"{cold:.2f}", f"{cached:.2f}", f"{ratios[path]:.1f}x")
    Console().print(table)
    write_json(
        {
            "clip": str(options.clip),
            "tracker": options.tracker,
            "frames": options.frames,
            "max_new_tokens": options.max_new_tokens,
            "repeats": options.repeats,
            "seconds": times,
            "medians": medians,
            "cold_over_cached": ratios,
            "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        },
        options.json,
    )
    print(f"wrote {options.json}")


if __name__ == "__main__":
    main()
