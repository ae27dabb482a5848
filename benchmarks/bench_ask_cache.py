"""``garvid ask`` twice on the same clip: cold (tracks) versus a second ask that finds the tracks.

The second ask is the same question, a question about another subset of the objects,
fewer ``--frames``, or ``--window`` answers inside the tracked span: each must run no SAM2
(its JSON says ``"tracked_objects": []``). Each repeat runs the cold case and every second
ask, with the tiny-random GAR and a random tracker (``tiny-random``: hiera-tiny at 256 px,
the test model; or ``sam2.1-tiny-random``: hiera-tiny at its real 1024 px, the real
tracking cost): as the CLI in a fresh process (what a user waits for, interpreter and
imports included) and, for the same question, in-process through
:func:`garvid.qa.video_answering.answer_video` (models loaded inside the timed call, as
the CLI does). The cold case starts from an empty cache folder. Medians and cold/second
ratios are printed and written as JSON, with where a cached CLI run's seconds go (start-up
= interpreter and imports, then the stages its JSON reports) and whether it imported
sam2 or hydra (it must not).

    .venv/bin/python benchmarks/bench_ask_cache.py                 # cups.mp4, 8 keyframes, 3 repeats
    .venv/bin/python benchmarks/bench_ask_cache.py --repeats 5 --frames 16
    .venv/bin/python benchmarks/bench_ask_cache.py --tracker sam2.1-tiny-random --repeats 1 --json benchmarks/results/ask_cache_1024.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from results_file import provenance
from rich.console import Console
from rich.table import Table

from garvid.files import write_json
from garvid.media.open import open_video
from garvid.options import AnswerOptions, GenerationOptions, KeyframeOptions, ModelOptions, TrackingOptions
from garvid.qa.video_request import VideoRequest
from garvid.qa.video_answering import answer_video
from garvid.regions.input import RegionInput

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"
DEFAULT_JSON = REPO / "benchmarks" / "results" / "ask_cache.json"
QUESTION = "what does object 2 do to object 1?"
OTHER_QUESTION = "where is object 1 at the end?"


def cli_run(args: list[str], python: tuple[str, ...] = ()) -> tuple[float, dict, str]:
    """Wall seconds, the JSON answer and stderr of one ``garvid`` process."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *python, "-m", "garvid_cli", *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"garvid failed: {done.stderr.strip()}")
    return elapsed, json.loads(done.stdout), done.stderr


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
    parser.add_argument("--cli-only", action="store_true", help="skip the in-process runs (a cold run each: slow at 1024 px)")
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="garvid-bench-"))
    tiny = ["--model", "tiny-random", "--tracker", options.tracker, "--device", "cpu"]
    settings = ["--max-new-tokens", str(options.max_new_tokens), "--format", "json"]
    fewer = str(max(1, options.frames // 2))
    with open_video(options.clip) as video:
        half = video.info.duration / 2
    second_asks = {
        "same question": (QUESTION, ["--frames", str(options.frames)]),
        "other objects": (OTHER_QUESTION, ["--frames", str(options.frames)]),
        "fewer --frames": (QUESTION, ["--frames", fewer]),
        "--window": (QUESTION, ["--frames", fewer, "--window", f"{half:.3f}"]),
    }
    times: dict[str, list[float]] = {"cli_cold": [], "library_cold": [], "library_cached": []}
    times.update({f"cli_{name}": [] for name in second_asks})
    breakdown: dict[str, float] = {}
    # one untimed run builds the tiny checkpoints and warms the file cache
    cli_run(["ask", str(options.clip), QUESTION, "--mask", str(options.mask), *tiny, *settings, "--frames", "2", "--no-cache"])
    for repeat in range(options.repeats):
        cache = ["--cache-dir", str(work / f"cli-{repeat}")]
        base = ["ask", str(options.clip), "--mask", str(options.mask), *tiny, *settings, *cache]
        seconds, _, _ = cli_run([*base, QUESTION, "--frames", str(options.frames)])
        times["cli_cold"].append(seconds)
        for name, (question, extra) in second_asks.items():
            seconds, again, _ = cli_run([*base, question, *extra])
            if again["tracker"]["tracked_objects"]:
                raise SystemExit(f"{name}: the second ask tracked {again['tracker']['tracked_objects']}")
            times[f"cli_{name}"].append(seconds)
            if name == "same question":
                breakdown = {"wall": seconds, "start-up (interpreter, imports)": seconds - again["timings"]["total"]}
                breakdown.update({stage: again["timings"][stage] for stage in ("decode", "track", "load", "encode", "generate")})
                breakdown["planning and the rest"] = again["timings"]["total"] - sum(
                    again["timings"][stage] for stage in ("decode", "track", "load", "encode", "generate")
                )
        if options.cli_only:
            continue
        request = VideoRequest(
            video=options.clip,
            regions=RegionInput(masks=(options.mask,)),
            question=QUESTION,
            options=AnswerOptions(
                model=ModelOptions("tiny-random", device="cpu"),
                tracking=TrackingOptions(options.tracker, cache_dir=work / f"library-{repeat}"),
                keyframes=KeyframeOptions(frames=options.frames),
                generation=GenerationOptions(max_new_tokens=options.max_new_tokens),
            ),
        )
        times["library_cold"].append(library_seconds(request, expect_cached=False))
        times["library_cached"].append(library_seconds(request, expect_cached=True))
    # which heavy modules a cached run imports
    _, _, imports = cli_run(
        ["ask", str(options.clip), QUESTION, "--mask", str(options.mask), *tiny, *settings, "--frames", str(options.frames),
         "--cache-dir", str(work / "cli-0")],
        python=("-X", "importtime"),
    )  # fmt: skip
    imported = {line.rsplit("|", 1)[-1].strip() for line in imports.splitlines() if line.startswith("import time:")}
    heavy = {name: any(m == name or m.startswith(f"{name}.") for m in imported) for name in ("sam2", "hydra", "torch", "transformers")}
    shutil.rmtree(work, ignore_errors=True)

    medians = {name: median(values) for name, values in times.items() if values}
    title = f"garvid ask, cold vs second ask ({options.clip.name}, {options.frames} keyframes, tiny GAR, {options.tracker} tracker)"
    table = Table(title=title)
    for column in ("path", "second ask", "cold s (median)", "second s (median)", "cold / second"):
        table.add_column(column, justify="left" if column in ("path", "second ask") else "right")
    ratios = {}
    for name in second_asks:
        ratios[f"cli {name}"] = medians["cli_cold"] / medians[f"cli_{name}"]
        table.add_row("cli", name, f"{medians['cli_cold']:.2f}", f"{medians[f'cli_{name}']:.2f}", f"{ratios[f'cli {name}']:.1f}x")
    if not options.cli_only:
        ratios["library same question"] = medians["library_cold"] / medians["library_cached"]
        table.add_row(
            "library", "same question", f"{medians['library_cold']:.2f}", f"{medians['library_cached']:.2f}", f"{ratios['library same question']:.1f}x"
        )
    console = Console()
    console.print(table)
    console.print(
        "a cached CLI run: " + ", ".join(f"{name} {value:.2f} s" for name, value in breakdown.items())
        + f"; imported sam2: {heavy['sam2']}, hydra: {heavy['hydra']}"
    )
    write_json(
        {
            **provenance(),
            "clip": str(options.clip),
            "tracker": options.tracker,
            "frames": options.frames,
            "max_new_tokens": options.max_new_tokens,
            "repeats": options.repeats,
            "second_asks": {name: {"question": q, "options": extra} for name, (q, extra) in second_asks.items()},
            "seconds": times,
            "medians": medians,
            "cold_over_second": ratios,
            "cached_run_breakdown": breakdown,
            "cached_run_imports": heavy,
            "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        },
        options.json,
    )
    print(f"wrote {options.json}")


if __name__ == "__main__":
    main()
