"""Batched generation (``GARModel.generate_many``) against one prompt at a time (``generate``), GAR-8B-shaped.

Why: a decoding step reads every weight of the language model and its LM head once,
whatever the number of rows, so B prompts decoded together should cost little more per
step than one. This measures how much of that holds on this CPU, in fp32, greedy.

The model: GAR-8B's real text widths (Llama-3.1-8B: 4096 wide, 32 heads, 8 KV heads,
14336 MLP) and its 128,262-token vocabulary, at text depth 1 and 2 (vision depth 1: not
measured here), saved in the released layout (bf16 safetensors) to a temporary folder and
loaded like a real checkpoint with ``load_gar(dtype="fp32", device="cpu")``, one depth at
a time. The depth-2 minus depth-1 time is one text layer; the rest (LM head, embedding,
the loop) does not depend on depth. The report extrapolates to GAR-8B's 32 text layers:
an estimate, not a measurement.

The prompts: token embeddings of random ids, of differing lengths (``--prompt-lengths``,
a few hundred tokens each); batch size B takes the first B. Generation runs
``--new-tokens`` greedy tokens with no stop token, so every row decodes all of them.
Prefill (time to first token) is ``generate_many`` with ``max_new_tokens=1``; decode is
the time with ``--new-tokens`` minus that (best of ``--repeats`` each, cases interleaved),
which covers ``new_tokens - 1`` tokens per row (the first comes with the prefill). B=1 is
``generate`` (the single path; its first prompt answered alone counts as one of its
runs); ``generate_many`` at B=1 is shown beside it.

Also: (1) every batched answer is checked token for token against the same prompt
answered alone by ``generate`` (the ✓ column; the script exits 1 on any difference);
(2) drop vs keep finished rows, at text depth 1 only (to keep the run short): at the
largest B, stop tokens are picked from the rows' own greedy answers so that they end at
spread-out lengths, and ``drop_finished=True`` (finished rows leave the batch and its
key/value cache) is timed against ``False`` (they keep being decoded, their tokens
ignored), also net of the prefill; both must give the answers alone, cut at the stop
token; (3) the LM head matmul alone at each B, the main depth-independent cost of a step.

What to expect: if a step were bound by reading the weights (~2.1 GB LM head and ~0.87 GB
per text layer in fp32), B=8 would decode nearly 8x the tokens/s of B=1. On a CPU only
B=1 is: its matrix-vector products stream the weights at memory bandwidth. The skinny
matrix-matrix products of a batched step (B x 4096 against the 4096 x 128,262 LM head and
the 14336-wide MLP) run far below the FLOP rate that prefill's large ones reach: on the
2-core EPYC this was written on, the LM head costs about 2x its B=1 time at B=2, and a
whole step about 3x a B=1 step at both B=4 and B=8. So B=8 gains under 3x, B=4 well under 2x, and dropping finished
rows saves little: a step gets cheaper mainly once one row is left. Attention over each row's own
key/values grows with B too, and padding to the longest prompt adds prefill work. The
printout gives the LM head and per-layer rates behind this on the machine at hand. The
32-layer extrapolation multiplies the depth-2 minus depth-1 difference by 31, so its
noise too: read it as a rough estimate. About 11 to 13 minutes with the defaults here.

    .venv/bin/python benchmarks/bench_batched_generation.py [--batch-sizes 1,4,8] [--new-tokens 64]
        [--prompt-lengths 192,144,...] [--repeats 2] [--json benchmarks/results/batched_generation.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from results_file import provenance
from rich.console import Console
from rich.table import Table

from garvid.files import write_json
from garvid.gar.loading import load_gar
from garvid.gar.model import GARModel
from garvid.gar.tiny import gar_config, random_gar, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
DEFAULT_JSON = REPO / "benchmarks" / "results" / "batched_generation.json"
GAR_8B_TEXT_DEPTH = 32
DEPTHS = (1, 2)
WIDTH = 4096
DROP_KEEP_DEPTH = 1  # drop vs keep is measured at one depth only, to keep the run short
STARTED = time.perf_counter()


def save_gar_8b_shaped(text_depth: int, directory: Path) -> None:
    """A random GAR-8B-shaped checkpoint (real text widths and vocabulary, vision depth 1) in bf16."""
    config = gar_config(
        "gar-8b", vision_width=1536, vision_depth=1, vision_heads=16, text_width=WIDTH, text_depth=text_depth,
        text_heads=32, text_kv_heads=8, text_intermediate=14336,
    )  # fmt: skip
    save_checkpoint(random_gar(config).to(torch.bfloat16), directory, shards=4, max_num_tiles=8)


def make_prompts(model: GARModel, lengths: list[int], seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [model.input_embeddings(torch.randint(0, 128000, (1, length), generator=generator)) for length in lengths]


def progress(message: str) -> None:
    print(f"{message} ({time.perf_counter() - STARTED:.0f} s)", flush=True)


def timed(work: Callable[[], list[list[int]]]) -> tuple[float, list[list[int]]]:
    started = time.perf_counter()
    outputs = work()
    return time.perf_counter() - started, outputs


@dataclass
class Case:
    """One way of generating for the first ``batch`` prompts, timed at 1 and at N new tokens."""

    path: str  # "generate" or "generate_many"
    batch: int
    first: list[float] = field(default_factory=list)  # seconds with max_new_tokens=1 (prefill)
    full: list[float] = field(default_factory=list)  # seconds with max_new_tokens=N
    outputs: list[list[int]] = field(default_factory=list)

    def run(self, model: GARModel, prompts: list[torch.Tensor], new_tokens: int) -> list[list[int]]:
        if self.path == "generate":
            return [model.generate(prompts[0], max_new_tokens=new_tokens, eos_token_ids=())]
        return model.generate_many(prompts[: self.batch], max_new_tokens=new_tokens, eos_token_ids=())

    def summary(self, new_tokens: int) -> dict:
        prefill, total = min(self.first), min(self.full)
        decode = max(total - prefill, 1e-9)
        return {
            "path": self.path, "batch": self.batch, "prefill_s": prefill, "generate_s": total, "decode_s": decode,
            "decode_step_s": decode / (new_tokens - 1), "decode_tokens_per_s": self.batch * (new_tokens - 1) / decode,
            "first_s": self.first, "full_s": self.full,
        }  # fmt: skip


def answer_lengths(answers: list[list[int]], stops: set[int]) -> list[int]:
    """How many tokens each greedy answer keeps when any of ``stops`` ends it."""
    return [next((i for i, token in enumerate(answer) if token in stops), len(answer)) for answer in answers]


def spread_stops(answers: list[list[int]]) -> set[int]:
    """Stop token ids, taken from the answers themselves, that end row i (all but the last,
    which runs to the cap) near (i + 1) / B of the way, without moving the other rows' ends."""
    stops: set[int] = set()
    for row, answer in enumerate(answers[:-1]):
        target = round(len(answer) * (row + 1) / len(answers))
        current = answer_lengths(answers, stops)
        for position in sorted(range(1, current[row]), key=lambda p: abs(p - target)):
            trial = answer_lengths(answers, stops | {answer[position]})
            if trial[row] == position and all(trial[j] == current[j] for j in range(len(answers)) if j != row):
                stops.add(answer[position])
                break
    return stops


def lm_head_ms(model: GARModel, batch_sizes: list[int], repeats: int = 3) -> dict[int, float]:
    """The LM head matmul alone, (B, 4096) x (4096, vocab), best of ``repeats`` after a warm-up."""
    times = {}
    for batch in batch_sizes:
        hidden = torch.randn(batch, WIDTH, dtype=model.dtype) * 0.02
        model.mllm.lm_head(hidden)
        times[batch] = 1e3 * min(timed(lambda: model.mllm.lm_head(hidden))[0] for _ in range(repeats))
    return times


def measure(model: GARModel, prompts: list[torch.Tensor], args: argparse.Namespace) -> dict:
    """Singles (each prompt alone: the reference answers), then every case, interleaved per repeat."""
    model.generate(prompts[0][:, :16], max_new_tokens=2, eos_token_ids=())  # warm-up
    model.generate_many([prompts[0][:, :16], prompts[1][:, :8]], max_new_tokens=2, eos_token_ids=())
    alone_s, alone = [], []
    for prompt in prompts:
        seconds, (answer,) = timed(lambda: [model.generate(prompt, max_new_tokens=args.new_tokens, eos_token_ids=())])
        alone_s.append(seconds)
        alone.append(answer)
    progress("  answered each prompt alone")
    single = Case("generate", 1, full=alone_s[:1], outputs=alone[:1])
    cases = [single, *(Case("generate_many", b) for b in args.batch_sizes)]
    for _ in range(args.repeats):
        for case in cases:
            case.first.append(timed(lambda: case.run(model, prompts, 1))[0])
            if len(case.full) < args.repeats:  # the first prompt answered alone is one generate run already
                seconds, case.outputs = timed(lambda: case.run(model, prompts, args.new_tokens))
                case.full.append(seconds)
    progress("  timed the batch sizes")
    rows = []
    for case in cases:
        row = case.summary(args.new_tokens)
        row["identical"] = case.outputs == alone[: case.batch]
        rows.append(row)
    return {"cases": rows, "alone_s": alone_s, "alone": alone}


def drop_vs_keep(
    model: GARModel, prompts: list[torch.Tensor], alone: list[list[int]], args: argparse.Namespace
) -> dict:
    """All prompts in one batch, stopping at spread-out lengths, with finished rows dropped or kept."""
    stops = spread_stops(alone)
    expected = [answer[:length] for answer, length in zip(alone, answer_lengths(alone, stops))]
    times: dict[str, list[float]] = {"keep": [], "drop": []}
    answers = {}
    for repeat in range(args.repeats):
        for mode in ("keep", "drop") if repeat % 2 == 0 else ("drop", "keep"):
            seconds, answers[mode] = timed(
                lambda: model.generate_many(
                    prompts, max_new_tokens=args.new_tokens, eos_token_ids=sorted(stops), drop_finished=mode == "drop"
                )
            )
            times[mode].append(seconds)
    progress("  timed drop vs keep")
    return {
        "batch": len(prompts), "stop_token_ids": sorted(stops), "answer_lengths": [len(a) for a in expected],
        "keep_s": min(times["keep"]), "drop_s": min(times["drop"]), "all_keep_s": times["keep"],
        "all_drop_s": times["drop"], "identical": answers["keep"] == answers["drop"] == expected,
    }  # fmt: skip


def extrapolate(shallow: dict, deep: dict, new_tokens: int) -> list[dict]:
    """Per case: per-layer and depth-independent costs, and the estimate at GAR-8B's 32 text layers."""
    rows = []
    for one, two in zip(shallow["cases"], deep["cases"]):
        layer_prefill = max(two["prefill_s"] - one["prefill_s"], 0.0)
        layer_step = max(two["decode_step_s"] - one["decode_step_s"], 0.0)
        step = one["decode_step_s"] + (GAR_8B_TEXT_DEPTH - 1) * layer_step
        rows.append({
            "path": one["path"], "batch": one["batch"], "per_layer_prefill_s": layer_prefill,
            "per_layer_step_s": layer_step, "depth_independent_step_s": max(one["decode_step_s"] - layer_step, 0.0),
            "prefill_s": one["prefill_s"] + (GAR_8B_TEXT_DEPTH - 1) * layer_prefill, "decode_step_s": step,
            "decode_tokens_per_s": one["batch"] / step,
        })  # fmt: skip
    return rows


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor()


def model_shapes(model: GARModel, args: argparse.Namespace) -> dict[str, int]:
    layer = model.mllm.model.language_model.layers[0]
    largest = args.batch_sizes[-1]
    return {
        "lm_head_parameters": model.mllm.lm_head.weight.numel(),
        "text_layer_parameters": sum(p.numel() for p in layer.parameters()),
        "padded_prompt_tokens": largest * max(args.prompt_lengths[:largest]),
    }


def explain(lm_head: dict[int, float], shapes: dict[str, int], measured: dict[int, dict], estimate: list[dict]) -> str:
    """Why the batch gains what it gains: bytes of weights per second at B=1, FLOP/s at the largest B."""
    head, layer, padded = shapes["lm_head_parameters"], shapes["text_layer_parameters"], shapes["padded_prompt_tokens"]
    top = max(lm_head)
    layer_one, layer_top = (max(estimate[i]["per_layer_step_s"], 1e-9) for i in (0, -1))
    prefill = max(measured[2]["cases"][-1]["prefill_s"] - measured[1]["cases"][-1]["prefill_s"], 1e-9)
    head_ms = ", ".join(f"B={b} {ms:.0f} ms" for b, ms in lm_head.items())
    return (
        f"LM head alone ({head / 1e6:.0f} M parameters, {4 * head / 1e9:.1f} GB fp32): {head_ms}; B=1 reads "
        f"{4 * head / lm_head[1] / 1e6:.0f} GB/s of weights, B={top} costs {lm_head[top] / lm_head[1]:.1f}x that, at "
        f"{2 * top * head / lm_head[top] / 1e6:.0f} GFLOP/s.\n"
        f"One text layer ({layer / 1e6:.0f} M parameters, {4 * layer / 1e9:.2f} GB fp32; depth 2 minus depth 1): "
        f"decode step B=1 {1e3 * layer_one:.0f} ms ({4 * layer / layer_one / 1e9:.0f} GB/s), B={top} "
        f"{1e3 * layer_top:.0f} ms ({2 * top * layer / layer_top / 1e9:.0f} GFLOP/s); prefill B={top} ({padded} "
        f"padded tokens) {prefill:.2f} s ({2 * padded * layer / prefill / 1e9:.0f} GFLOP/s, attention not counted).\n"
        "A B=1 step streams the weights at memory bandwidth; the skinny B x 4096 matrix products of a batched step "
        "run far below the FLOP rate that prefill's large ones reach, so a batched step costs several B=1 steps, "
        "not about one. The 32-layer rows extrapolate linearly from depths 1 and 2: an estimate."
    )


def report(
    args: argparse.Namespace, measured: dict[int, dict], estimate: list[dict], drop_keep: dict, console: Console
) -> None:
    threads, largest = torch.get_num_threads(), args.batch_sizes[-1]
    table = Table(
        title=f"Greedy generation, GAR-8B-shaped text model, CPU fp32, {threads} threads, {args.new_tokens} new "
        f"tokens per row (best of {args.repeats})"
    )
    for column in ("text layers", "path", "B", "prefill s", "decode s/step", "decode tok/s", "vs B=1", "= alone"):
        table.add_column(column, justify="left" if column in ("path", "text layers") else "right")
    for depth, rows in [*((d, measured[d]["cases"]) for d in DEPTHS), (GAR_8B_TEXT_DEPTH, estimate)]:
        label = f"{depth}" if depth in DEPTHS else f"{depth} (estimate)"
        for row in rows:
            check = "" if "identical" not in row else "✓" if row["identical"] else "✗"
            speed, gain = row["decode_tokens_per_s"], row["decode_tokens_per_s"] / rows[0]["decode_tokens_per_s"]
            table.add_row(
                label, row["path"], str(row["batch"]), f"{row['prefill_s']:.2f}", f"{row['decode_step_s']:.3f}",
                f"{speed:.1f}", f"{gain:.2f}x", check,
            )  # fmt: skip
        table.add_section()
    console.print(table)

    prefill = measured[DROP_KEEP_DEPTH]["cases"][-1]["prefill_s"]  # the same prompts' first token
    title = f"Drop vs keep finished rows, text depth {DROP_KEEP_DEPTH}, B={largest}, answers of differing length"
    drops = Table(title=title)
    for column in ("answer lengths", "", "keep", "drop", "drop saves", "same answers"):
        drops.add_column(column, justify="right")
    keep, drop = drop_keep["keep_s"], drop_keep["drop_s"]
    lengths, same = ",".join(map(str, drop_keep["answer_lengths"])), "✓" if drop_keep["identical"] else "✗"
    drops.add_row(lengths, "generate_many s", f"{keep:.2f}", f"{drop:.2f}", f"{1 - drop / keep:.0%}", same)
    drops.add_row("", f"minus prefill ({prefill:.2f} s)", f"{keep - prefill:.2f}", f"{drop - prefill:.2f}",
                  f"{1 - (drop - prefill) / (keep - prefill):.0%}", "")  # fmt: skip
    console.print(drops)
    no_stop = measured[DROP_KEEP_DEPTH]["cases"][-1]["generate_s"]
    console.print(
        f"keep decodes every row to the end: the work of the B={largest} case with no stop token above "
        f"({no_stop:.2f} s); best of {args.repeats} each"
    )
    for depth in DEPTHS:
        alone_s = measured[depth]["alone_s"]
        batched = measured[depth]["cases"][-1]["generate_s"]
        console.print(
            f"text depth {depth}: the {len(alone_s)} prompts one at a time with generate took {sum(alone_s):.1f} s, "
            f"generate_many of all {largest} {batched:.1f} s ({sum(alone_s) / batched:.2f}x), prefill included"
        )


def parse_ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=parse_ints, default=[1, 4, 8], help="comma-separated; must include 1")
    parser.add_argument("--new-tokens", type=int, default=64, help="greedy tokens per row (no stop token)")
    parser.add_argument(
        "--prompt-lengths", type=parse_ints, default=[192, 144, 256, 176, 224, 160, 288, 208],
        help="prompt tokens of each row, comma-separated; batch size B takes the first B",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    args.batch_sizes = sorted(set(args.batch_sizes))
    if args.batch_sizes[0] != 1 or len(args.prompt_lengths) < args.batch_sizes[-1] or args.new_tokens < 2:
        parser.error("--batch-sizes must include 1, --prompt-lengths needs a length per row, --new-tokens at least 2")
    torch.set_grad_enabled(False)

    measured: dict[int, dict] = {}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="garvid-bench-batched-") as scratch:
        for depth in DEPTHS:
            checkpoint = Path(scratch) / f"gar-8b-shaped-text{depth}"
            save_gar_8b_shaped(depth, checkpoint)
            model = load_gar(str(checkpoint), dtype="fp32", device="cpu")
            progress(f"text depth {depth}: built, saved and loaded")
            if depth == DEPTHS[0]:
                lm_head, shapes = lm_head_ms(model, args.batch_sizes), model_shapes(model, args)
            prompts = make_prompts(model, args.prompt_lengths[: args.batch_sizes[-1]])
            measured[depth] = measure(model, prompts, args)
            if depth == DROP_KEEP_DEPTH:
                drop_keep = drop_vs_keep(model, prompts, measured[depth]["alone"], args)
            del model, prompts
    estimate = extrapolate(measured[1], measured[2], args.new_tokens)

    console = Console(width=150)
    report(args, measured, estimate, drop_keep, console)
    console.print(explain(lm_head, shapes, measured, estimate))
    load_after = os.getloadavg()[0]
    console.print(
        f"1-minute load average {load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} CPUs "
        "(other processes running meanwhile slow some runs; the best of the repeats is kept)"
    )
    identical = drop_keep["identical"] and all(r["identical"] for d in DEPTHS for r in measured[d]["cases"])
    write_json(
        {
            **provenance(),
            "machine": platform.machine(),
            "cpu": cpu_name(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "repeats": args.repeats,
            "new_tokens": args.new_tokens,
            "decode_tokens_per_row": args.new_tokens - 1,
            "prompt_lengths": args.prompt_lengths[: args.batch_sizes[-1]],
            "batch_sizes": args.batch_sizes,
            "measured": {f"text_depth_{d}": m for d, m in measured.items()},
            "lm_head_ms": lm_head,
            **shapes,
            "gar_8b_estimate": estimate,
            "all_identical": identical,
            "drop_keep": {"text_depth": DROP_KEEP_DEPTH, **drop_keep},
            "seconds": time.perf_counter() - STARTED,
            "load_average": {"before": load_before, "after": load_after},
        },
        args.json,
    )
    console.print(f"wrote {args.json} ({time.perf_counter() - STARTED:.0f} s in all)")
    if not identical:
        console.print("[red]batched answers differ from the answers alone (✗ above)[/red]")
        sys.exit(1)


if __name__ == "__main__":
    main()
