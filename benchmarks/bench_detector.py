"""What ``--object`` adds: one detector call on one 1280x720 frame, per detector preset, at
the real model sizes, beside SAM2's cost per tracked frame.

The detectors are built locally from their published configurations (Grounding DINO with
the Swin-T or Swin-B backbone and BERT-base text encoder, 900 queries, 800-1333 px input;
SAM 3 with its ViT backbone at 1008 px, CLIP text encoder and 200 queries) with random
weights, and run through garvid's own path (``Detector.candidates``: transformers'
processor, the model, its post-processing). The cost does not depend on the weights, so it
is the cost of the real checkpoints. SAM2 is the ``sam2.1-tiny-random`` tracker (hiera-tiny
at its real 1024 px) tracking the cups clip's four objects.

    .venv/bin/python benchmarks/bench_detector.py                  # 2 timed calls per detector
    .venv/bin/python benchmarks/bench_detector.py --repeats 3 --presets grounding-dino-tiny
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from results_file import provenance
from rich.console import Console
from rich.table import Table

from garvid.detection.checkpoints import DetectorSpec
from garvid.detection.models import Detector
from garvid.detection.tiny import build_parts, random_model
from garvid.files import write_json
from garvid.media.open import open_video
from garvid.presets import get_preset
from garvid.regions.prompts import RegionPrompts
from garvid.tracking import Sam2Tracker, tracked_frames

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"
DEFAULT_JSON = REPO / "benchmarks" / "results" / "detector.json"
#: preset -> the size of its family's builder that matches the published checkpoint
SIZES = {"grounding-dino-tiny": "swin-t", "grounding-dino-base": "swin-b", "sam3": "full"}
PHRASE = "the red cup"


def time_detector(preset: str, frame: np.ndarray, repeats: int) -> dict:
    family = get_preset("detectors", preset)["family"]
    started = time.perf_counter()
    config, processor = build_parts(family, SIZES[preset])
    model = random_model(family, config)
    build_s = time.perf_counter() - started
    detector = Detector(DetectorSpec(preset, family, Path(), 0.0), processor, model, torch.device("cpu"))
    detector.candidates(frame, PHRASE)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        candidates = detector.candidates(frame, PHRASE)
        times.append(time.perf_counter() - start)
    row = {
        "case": preset,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "build_s": round(build_s, 1),
        "s_per_call": round(statistics.median(times), 2),
        "times_s": [round(t, 2) for t in times],
        "instances": int(candidates.scores.size),
    }
    del detector, model
    gc.collect()
    return row


def time_sam2(clip: Path, mask: Path, frames: int) -> dict:
    tracker = Sam2Tracker.from_preset("sam2.1-tiny-random", device="cpu")
    with open_video(clip) as video:
        info = video.info
        labels = np.array(Image.open(mask))
        prompts = RegionPrompts(frame=0, masks={int(v): labels == v for v in np.unique(labels) if v != 0})
        stride = max(1, info.num_frames // frames)
        tracked = tracked_frames(info.num_frames, 0, stride)[:frames]
        start = time.perf_counter()
        tracker.track(video, prompts, tracked)
        seconds = time.perf_counter() - start
    return {
        "case": f"sam2.1-tiny tracking ({len(prompts.object_ids)} objects)",
        "params_m": round(sum(p.numel() for p in tracker.predictor.parameters()) / 1e6, 1),
        "s_per_call": round(seconds / len(tracked), 2),
        "tracked_frames": len(tracked),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=MEDIA / "cups.mp4")
    parser.add_argument("--mask", type=Path, default=MEDIA / "cups_first_frame.png")
    parser.add_argument("--presets", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tracked-frames", type=int, default=4)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    with open_video(args.clip) as video:
        frame = video.frames([0])[0]
    rows = [time_detector(preset, frame, args.repeats) for preset in args.presets]
    rows.append(time_sam2(args.clip, args.mask, args.tracked_frames))
    table = Table(title=f"--object cost on one {frame.shape[1]}x{frame.shape[0]} frame (CPU, {torch.get_num_threads()} threads)")
    for column in ("case", "params (M)", "s per call / tracked frame"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for row in rows:
        table.add_row(row["case"], f"{row['params_m']:.1f}", f"{row['s_per_call']:.2f}")
    Console().print(table)
    write_json(
        {**provenance(), "machine": {"processor": platform.processor(), "threads": torch.get_num_threads(), "torch": torch.__version__}, "rows": rows},
        args.json,
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
