"""Items per minute of ``garvid batch --describe``'s answering stage at ``--batch-size`` 1, 4 and 8.

GAR-8B's weights cannot be had here, so the model is GAR-8B-shaped with reduced depth:
the real widths (PE-G 1536; Llama-3.1-8B 4096 wide, 8 KV heads, 14336 MLP) and the real
128,262-token vocabulary, one vision and one text layer, saved in the released layout
and loaded like a checkpoint. Each item is a clip cut from ``../shared/media/cups.mp4``
with the cups' first-frame mask (two objects, so describe writes two answers per item);
the clips are tracked first with the tiny-random SAM2 (not timed) and every batch size
then answers the same items through :func:`garvid.batch.runner.answer_requests`, the
local engine's answering stage, with describe-length answers (``--new-tokens``, 64 by
default; a random model rarely stops early, so every answer has that length).

Per batch size: seconds, items/min, the ratio to batch size 1 (same run, same items), the
batched forward passes' prompts, and whether every answer's tokens equal batch size 1's.
An item asks its prompts one after the other (its second object once its first is
answered), so a batch holds at most one prompt per item: batches of 8 need 8 items.
The stage times show where the gain comes from: the vision tower and the prefill cost the
same per prompt in any batch on a CPU (compute-bound), the decoding steps are shared.

    .venv/bin/python benchmarks/bench_batched_answering.py [--items 8] [--new-tokens 64] [--batch-sizes 1,4,8]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch
from bench_batch import make_clips
from bench_eval_item import gar_8b_shaped
from results_file import provenance
from rich.console import Console
from rich.table import Table

from garvid.batch.runner import answer_requests
from garvid.files import write_json
from garvid.gar.loading import load_gar
from garvid.gar.model import GARModel
from garvid.gar.tiny import save_checkpoint
from garvid.options import AnswerOptions, GenerationOptions, KeyframeOptions, ModelOptions, TrackingOptions
from garvid.qa.reporting import Reporter
from garvid.qa.video_request import VideoRequest
from garvid.qa.context import AnswerContext
from garvid.qa.video_answering import track_ahead
from garvid.regions.input import RegionInput
from garvid.tracking.backends import LazyTracker

REPO = Path(__file__).resolve().parents[1]
DEFAULT_JSON = REPO / "benchmarks" / "results" / "batched_answering.json"


def describe_requests(clips: list[Path], checkpoint: Path, frames: int, new_tokens: int, cache: Path) -> list[VideoRequest]:
    """One describe request per clip (its mask beside it), tracked into ``cache``."""
    options = AnswerOptions(
        model=ModelOptions(str(checkpoint), device="cpu"),
        tracking=TrackingOptions("tiny-random", cache_dir=cache),
        keyframes=KeyframeOptions(frames=frames),
        generation=GenerationOptions(max_new_tokens=new_tokens),
    )
    requests = [VideoRequest(clip, RegionInput(masks=(clip.with_suffix(".png"),)), options=options) for clip in clips]
    tracker = LazyTracker("tiny-random", "cpu")
    context = AnswerContext(tracker=tracker)
    for request in requests:
        track_ahead(request, context)
    tracker.free()
    return requests


def answer_all(model: GARModel, requests: list[VideoRequest], batch_size: int) -> tuple[float, list, dict[str, float], list[int]]:
    """Seconds to answer every request, their answers' token ids, summed stage times, batched prompt counts."""
    batches: list[int] = []
    generate_many = model.generate_many

    def counted(prompts, **options):
        batches.append(len(prompts))
        return generate_many(prompts, **options)

    model.generate_many = counted  # type: ignore[method-assign]  # instance attribute: this model only
    started = time.perf_counter()
    outcomes = list(answer_requests(requests, model, batch_size, Reporter(), lambda: False))
    seconds = time.perf_counter() - started
    del model.generate_many
    failed = [outcome for outcome in outcomes if outcome.error is not None]
    if failed:
        raise SystemExit(f"an item failed at batch size {batch_size}: {failed[0].error}")
    results = [outcome.result for outcome in sorted(outcomes, key=lambda outcome: outcome.key)]
    stages = {stage: sum(result.timings[stage] for result in results) for stage in ("decode", "encode", "generate")}
    return seconds, [[answer.token_ids for answer in result.answers] for result in results], stages, batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=8, help="clips to describe (two objects each)")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each clip")
    parser.add_argument("--frames", type=int, default=2, help="keyframes per answer")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch-sizes", default="1,4,8")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    sizes = [int(size) for size in args.batch_sizes.split(",")]
    torch.set_grad_enabled(False)

    with tempfile.TemporaryDirectory(prefix="garvid-bench-batched-") as scratch:
        root = Path(scratch)
        clips = make_clips(root, args.items, args.seconds, 640)
        checkpoint = root / "gar-8b-shaped"
        save_checkpoint(gar_8b_shaped(1).to(torch.bfloat16), checkpoint, shards=4, max_num_tiles=8)
        requests = describe_requests(clips, checkpoint, args.frames, args.new_tokens, root / "cache")
        model = load_gar(str(checkpoint), dtype="fp32", device="cpu")
        runs = {}
        for size in sizes:
            print(f"batch size {size}: answering {args.items} items")
            runs[size] = answer_all(model, requests, size)

    base_seconds, base_answers, _, _ = runs[sizes[0]]
    prompts = sum(len(answers) for answers in base_answers)
    threads = torch.get_num_threads()
    table = Table(title=f"describe, {args.items} items ({prompts} answers of {args.new_tokens} tokens), GAR-8B-shaped depth 1, CPU fp32, {threads} threads")
    for column in ("batch size", "seconds", "items/min", f"vs {sizes[0]}", "encode s", "generate s", "batched passes", "tokens equal"):
        table.add_column(column, justify="right")
    report = {}
    for size, (seconds, answers, stages, batches) in runs.items():
        same = answers == base_answers
        passes = ", ".join(map(str, batches)) or "-"
        row = {"seconds": seconds, "items_per_minute": args.items * 60 / seconds, "speedup": base_seconds / seconds, "stages": stages}
        report[str(size)] = {**row, "batched_prompts": batches, "tokens_equal": same}
        table.add_row(
            str(size), f"{seconds:.1f}", f"{row['items_per_minute']:.2f}", f"{row['speedup']:.2f}x",
            f"{stages['encode']:.1f}", f"{stages['generate']:.1f}", passes, "yes" if same else "NO",
        )  # fmt: skip
    Console(width=150).print(table)
    write_json(
        {
            **provenance(),
            "machine": platform.machine(), "torch": torch.__version__, "threads": threads, "items": args.items,
            "answers": prompts, "new_tokens": args.new_tokens, "keyframes": args.frames, "runs": report,
        },
        args.json,
    )  # fmt: skip
    print(f"wrote {args.json}")
    if not all(entry["tokens_equal"] for entry in report.values()):
        raise SystemExit("batched answers differ from one at a time")


if __name__ == "__main__":
    main()
