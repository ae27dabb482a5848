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

With ``--redetect S ...`` it measures instead what finding the objects again costs
(``--redetect``): a 10 s 640x360 clip (the cups clip looped) is one shot; each detector
(the tiny random test presets, and the real architectures with random weights) runs
through garvid's path on the shot's detection frames (``detection_frames``: decoded one at
a time), ``--repeats`` of them timed, and the cost per shot for each ``S`` is its number of
detection frames times the median time per frame (every call costs the same: the
processor resizes each frame to the model's input size).

    .venv/bin/python benchmarks/bench_detector.py --redetect 1 2 5 10 --repeats 2
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from results_file import provenance
from rich.console import Console
from rich.table import Table

from garvid.detection.checkpoints import DetectorSpec, resolve_detector
from garvid.detection.models import Detector
from garvid.detection.tiny import build_parts, random_model
from garvid.files import write_json
from garvid.media.open import open_video
from garvid.presets import get_preset
from garvid.regions.prompts import RegionPrompts
from garvid.shots.shots import Shots
from garvid.tracking import Sam2Tracker, tracked_frames
from garvid.tracking.redetect import detection_frames, redetect_step

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"
DEFAULT_JSON = REPO / "benchmarks" / "results" / "detector.json"
REDETECT_JSON = REPO / "benchmarks" / "results" / "detector-redetect.json"
#: the test presets (tiny random weights, loaded like checkpoints)
TINY = ("tiny-random", "tiny-random-sam3")
#: preset -> the size of its family's builder that matches the published checkpoint
SIZES = {"grounding-dino-tiny": "swin-t", "grounding-dino-base": "swin-b", "sam3": "full"}
PHRASE = "the red cup"


def build_detector(preset: str) -> tuple[Detector, float]:
    """A detector of ``preset`` on the CPU: a test preset as garvid loads it, a real one at its
    published size with random weights; and the seconds it took."""
    started = time.perf_counter()
    if preset in TINY:
        detector = Detector.load(resolve_detector(preset), torch.device("cpu"), [PHRASE])
    else:
        family = get_preset("detectors", preset)["family"]
        config, processor = build_parts(family, SIZES[preset])
        detector = Detector(DetectorSpec(preset, family, Path(), 0.0), processor, random_model(family, config), torch.device("cpu"))
    return detector, time.perf_counter() - started


def time_detector(preset: str, frame: np.ndarray, repeats: int) -> dict:
    detector, build_s = build_detector(preset)
    model = detector.model
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


def looped_clip(source: Path, seconds: float, folder: Path) -> Path:
    """``source`` looped to ``seconds`` at 640x360 (re-encoded, its own rate)."""
    clip = folder / f"looped-{seconds:g}s.mp4"
    args = ["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(source), "-t", f"{seconds:g}", "-an", "-vf", "scale=640:360"]
    subprocess.run([*args, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip)], check=True)
    return clip


def time_redetection(preset: str, clip: Path, redetects: list[float], repeats: int) -> dict:
    """Seconds per detection frame of ``preset`` on ``clip`` (one shot), and per shot for each
    ``--redetect`` in ``redetects``."""
    detector, build_s = build_detector(preset)
    with open_video(clip) as video:
        info = video.info
        shots = Shots.from_cuts([], video.timestamps(), info.duration)
        plans = {s: detection_frames(shots, 0, info.num_frames, redetect_step(s, info.fps)) for s in redetects}
        frames = plans[min(redetects)][: repeats + 1]
        times = []
        for frame in frames:  # the first call warms up, untimed
            start = time.perf_counter()
            detector.candidates(video.frames([frame])[0], PHRASE)
            times.append(time.perf_counter() - start)
    per_frame = statistics.median(times[1:]) if len(times) > 1 else times[0]
    row = {
        "case": preset,
        "params_m": round(sum(p.numel() for p in detector.model.parameters()) / 1e6, 1),
        "build_s": round(build_s, 1),
        "s_per_detection_frame": round(per_frame, 3),
        "times_s": [round(t, 3) for t in times],
        "per_shot": {f"{s:g}": {"frames": len(plans[s]), "s": round(len(plans[s]) * per_frame, 2)} for s in redetects},
    }
    del detector
    gc.collect()
    return row


def redetection_main(args: argparse.Namespace) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        clip = looped_clip(args.clip, args.seconds, Path(folder))
        with open_video(clip) as video:
            info = video.info
        rows = []
        for preset in args.presets:
            rows.append(time_redetection(preset, clip, args.redetect, args.repeats))
            print(rows[-1], flush=True)
    title = (
        f"--redetect S on a {info.duration:.0f} s {info.width}x{info.height} shot ({info.fps:.2f} fps, CPU, "
        f"{torch.get_num_threads()} threads): detection frames / seconds per shot"
    )
    table = Table(title=title)
    for column in ("case", "params (M)", "s / frame", *(f"S={s:g}" for s in args.redetect)):
        table.add_column(column, justify="left" if column == "case" else "right")
    for row in rows:
        shots = (f"{row['per_shot'][f'{s:g}']['frames']} / {row['per_shot'][f'{s:g}']['s']:.1f}" for s in args.redetect)
        table.add_row(row["case"], f"{row['params_m']:.1f}", f"{row['s_per_detection_frame']:.2f}", *shots)
    Console().print(table)
    machine = {"processor": platform.processor(), "threads": torch.get_num_threads(), "torch": torch.__version__}
    clip_info = {"source": args.clip.name, "seconds": info.duration, "width": info.width, "height": info.height, "fps": info.fps}
    write_json({**provenance(), "machine": machine, "clip": clip_info, "rows": rows}, args.json or REDETECT_JSON)
    print(f"wrote {args.json or REDETECT_JSON}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=MEDIA / "cups.mp4")
    parser.add_argument("--mask", type=Path, default=MEDIA / "cups_first_frame.png")
    parser.add_argument("--presets", nargs="+", default=None, choices=[*TINY, *SIZES])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tracked-frames", type=int, default=4)
    parser.add_argument("--redetect", type=float, nargs="+", help="seconds between re-detections: measure those instead")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the --redetect clip")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.redetect:
        args.presets = args.presets or [*TINY, "grounding-dino-tiny", "sam3"]
        redetection_main(args)
        return
    args.presets, args.json = args.presets or list(SIZES), args.json or DEFAULT_JSON
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
