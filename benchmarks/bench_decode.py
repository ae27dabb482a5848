"""Decode cost of K evenly spaced frames versus decoding every frame, side by side.

Each case opens a fresh :class:`garvid.video.Video` (timed apart from decoding), then
either ``Video.frames`` fetches K frames spread evenly over the clip, or
``Video.iter_frames`` walks every frame in order. Cases are interleaved within each
repeat, after one untimed warm-up round. Peak RSS growth is measured once per case in a
fresh process (the kernel's high-water mark, ``VmHWM``, against the RSS just before
opening), because decord allocates in C++ where tracemalloc cannot see, and because
memory freed by an earlier case would hide a later case's growth.

    .venv/bin/python benchmarks/bench_decode.py                      # cups.mp4, K = 8 16 32
    .venv/bin/python benchmarks/bench_decode.py --clip other.mp4 --ks 4 64 --repeats 5
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

import decord
import numpy as np
from results_file import provenance
from rich.console import Console
from rich.table import Table

from garvid.files import write_json
from garvid.media.video_file import Video

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO.parent / "shared" / "media" / "cups.mp4"
DEFAULT_JSON = REPO / "benchmarks" / "results" / "decode.json"


@dataclass
class Case:
    name: str
    indices: list[int] | None  # None: every frame, in order
    open_s: list[float] = field(default_factory=list)
    decode_s: list[float] = field(default_factory=list)
    peak_rss_growth_mb: float = 0.0

    @property
    def total_s(self) -> list[float]:
        return [o + d for o, d in zip(self.open_s, self.decode_s)]

    def to_json(self, num_frames: int) -> dict:
        return {
            "case": self.name,
            "frames": num_frames if self.indices is None else len(self.indices),
            "indices": self.indices,
            "open_s": self.open_s,
            "decode_s": self.decode_s,
            "total_s": self.total_s,
            "median_open_s": median(self.open_s),
            "median_decode_s": median(self.decode_s),
            "median_total_s": median(self.total_s),
            "peak_rss_growth_mb": self.peak_rss_growth_mb,
        }


def read(video: Video, indices: list[int] | None) -> None:
    if indices is not None:
        video.frames(indices)
        return
    for _ in video.iter_frames(range(video.info.num_frames)):
        pass


def time_case(case: Case, clip: Path, threads: int) -> None:
    start = time.perf_counter()
    with Video(clip, num_threads=threads) as video:
        opened = time.perf_counter()
        read(video, case.indices)
        done = time.perf_counter()
    case.open_s.append(opened - start)
    case.decode_s.append(done - opened)


def _status_kb(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{name} missing from /proc/self/status")


def peak_rss_growth_mb(clip: Path, indices: list[int] | None, threads: int) -> float:
    """Run in a fresh process: how far RSS peaks above its level before opening the clip."""
    try:  # reset VmHWM to the current RSS (Linux >= 4.0), so import-time peaks do not count
        Path("/proc/self/clear_refs").write_text("5")
        resettable = True
    except OSError:
        resettable = False
    before = _status_kb("VmRSS")
    with Video(clip, num_threads=threads) as video:
        read(video, indices)
    peak = _status_kb("VmHWM") if resettable else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max(0, peak - before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="video to decode (default: shared cups.mp4)")
    parser.add_argument("--ks", type=int, nargs="+", default=[8, 16, 32], help="numbers of evenly spaced frames")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (after one warm-up round)")
    parser.add_argument("--threads", type=int, default=0, help="decoder threads (0: garvid's default, one)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the results")
    args = parser.parse_args()

    with Video(args.clip) as video:
        info = video.info
    keyframes = decord.VideoReader(str(args.clip)).get_key_indices()
    cases = [
        Case(f"K={k}", np.linspace(0, info.num_frames - 1, min(k, info.num_frames)).round().astype(int).tolist())
        for k in args.ks
    ]
    cases.append(Case("all", None))
    for case in cases:  # warm-up: page cache, imports, allocator
        time_case(case, args.clip, args.threads)
        case.open_s.clear()
        case.decode_s.clear()
    for _ in range(args.repeats):
        for case in cases:
            time_case(case, args.clip, args.threads)
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        for case in cases:
            case.peak_rss_growth_mb = pool.apply(peak_rss_growth_mb, (args.clip, case.indices, args.threads))

    full = cases[-1]
    full_decode, full_total = median(full.decode_s), median(full.total_s)
    title = (
        f"{args.clip.name}: {info.width}x{info.height}, {info.num_frames} frames at {info.fps:.3f} fps, "
        f"keyframes at {keyframes}; median of {args.repeats} runs"
    )
    table = Table(title=title)
    for column in ("case", "frames", "open s", "decode s", "range s", "total s", "all/K decode", "all/K total",
                   "peak ΔRSS MB"):
        table.add_column(column, justify="right")
    ratios = {}
    for case in cases:
        decode, total = median(case.decode_s), median(case.total_s)
        ratio = case is not full
        if ratio:
            ratios[case.name] = {"decode": full_decode / decode, "total": full_total / total}
        table.add_row(
            case.name,
            str(info.num_frames if case.indices is None else len(case.indices)),
            f"{median(case.open_s):.3f}",
            f"{decode:.3f}",
            f"{min(case.decode_s):.2f}-{max(case.decode_s):.2f}",
            f"{total:.3f}",
            f"{full_decode / decode:.2f}x" if ratio else "",
            f"{full_total / total:.2f}x" if ratio else "",
            f"{case.peak_rss_growth_mb:.0f}",
        )
    Console(width=max(Console().width, 110)).print(table)
    write_json(
        {
            **provenance(),
            "clip": str(args.clip),
            "video": info.to_json(),
            "keyframes": keyframes,
            "repeats": args.repeats,
            "threads": args.threads,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "decord": decord.__version__},
            "cases": [case.to_json(info.num_frames) for case in cases],
            "ratios_all_over_k": ratios,
        },
        args.json,
    )
    Console(stderr=True).print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
