"""Answering many prompts per forward pass (``--batch-size``): same answers as one at a time,
batches grouped by length, out-of-memory and bad items isolated, ``auto`` sized from the model."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import torch
from garvid_cli.main import run
from test_batch import TINY, _cut, _mask

from garvid.errors import GarvidError
from garvid.gar.pass_size import CPU_PER_PASS, auto_prompts_per_pass, fit_prompts_per_pass, kv_bytes_per_token
from garvid.gar.encoding import EncodeJob, encode_many
from garvid.gar.loading import load_gar
from garvid.gar.model import GARModel
from garvid.gar.processor import ImageConfig, preprocess_image
from garvid.gar.tiny import gar_config, random_gar
from garvid.gar.tokenizer import load_tokenizer
from garvid.options import AnswerOptions, GenerationOptions, KeyframeOptions, ModelOptions, TrackingOptions, parse_prompts_per_pass
from garvid.qa import steps
from garvid.gar.answering import AnswerTexts
from garvid.qa.steps import Generated, PooledAnswering, PromptJob

QUESTIONS = ["what does object 1 do?", "where is object 2 at the end, and what is above it all the time?", "is #1 moving?"]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, media) -> Path:
    """Five items over two clips (three questions about one), questions of different lengths."""
    root = tmp_path_factory.mktemp("batched")
    for name, start in (("cups_a", 0.0), ("cups_b", 3.0)):
        _cut(media / "cups.mp4", root / f"{name}.mp4", start)
        _mask(media / "cups_first_frame.png", root / f"{name}.png")
    rows = [("a1", "cups_a", QUESTIONS[0]), ("b1", "cups_b", QUESTIONS[1]), ("a2", "cups_a", QUESTIONS[1])]
    rows += [("b2", "cups_b", QUESTIONS[2]), ("a3", "cups_a", QUESTIONS[2])]
    lines = [json.dumps({"id": i, "video": str(root / f"{c}.mp4"), "mask": str(root / f"{c}.png"), "question": q}) for i, c, q in rows]
    path = root / "items.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def batches(monkeypatch) -> list[int]:
    """The number of prompts of every generate_many call (the real one runs)."""
    sizes: list[int] = []
    real = GARModel.generate_many

    def spy(self, prompts, **options):
        sizes.append(len(prompts))
        return real(self, prompts, **options)

    monkeypatch.setattr(GARModel, "generate_many", spy)
    return sizes


def _answers(out: Path) -> dict[str, list[tuple[str, int]]]:
    """Each item's answer texts with their prompt lengths (a question's answer, or each object's description)."""
    answers = {}
    for path in sorted(out.glob("*.json")):
        data = json.loads(path.read_text())
        found = [(data["answer"], data["prompt_tokens"])] if "answer" in data else []
        found += [(o["text"], o["prompt_tokens"]) for window in data.get("descriptions", []) for o in window["objects"]]
        answers[path.stem] = found
    return answers


@pytest.mark.slow
@pytest.mark.parametrize("mode", [["--question", QUESTIONS[0]], ["--describe"]], ids=["ask", "describe"])
def test_batched_batch_run_answers_as_one_at_a_time(manifest, tmp_path, capsys, batches, mode):
    common = [str(manifest), *TINY, "--max-new-tokens", "6", "--cache-dir", str(manifest.parent / "cache"), *mode]
    assert run(["batch", *common, "-o", str(tmp_path / "one")]) == 0, capsys.readouterr().err
    assert batches == []  # one at a time: no batched call
    assert run(["batch", *common, "-o", str(tmp_path / "three"), "--batch-size", "3"]) == 0
    err = capsys.readouterr().err
    one, three = _answers(tmp_path / "one"), _answers(tmp_path / "three")
    assert set(one) == {"a1", "a2", "a3", "b1", "b2"} and three == one
    answers = [answer for item in one.values() for answer in item]
    assert len(set(answers)) > 1  # items' prompts and answers differ: a mix-up would show
    # describe asks two prompts per item (one per object): ten prompts, batches of at most 3
    assert max(batches) == 3 and sum(batches) <= len(answers) and "items/min" in err


def test_batch_size_is_checked_before_anything_runs(tmp_path, capsys):
    for bad in ("0", "-2", "x", "1.5", ""):
        assert run(["batch", str(tmp_path), "-q", "what?", "--batch-size", bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--batch-size must be a whole number" in err
    assert parse_prompts_per_pass("AUTO") == "auto" and parse_prompts_per_pass(" 8 ") == 8


# --- the scheduler, with stand-in prompts ------------------------------------------------


@dataclass
class _Model:
    device: torch.device = torch.device("cpu")


@dataclass
class _Item:
    """An item of ``prompts`` prompts of ``length`` tokens, recording the answers it got."""

    length: int
    prompts: int = 1
    got: list[str] = field(default_factory=list)

    def steps(self, model, key):
        for index in range(self.prompts):
            reply = yield PromptJob(model, None, [key] * self.length, [], [], "reference", GenerationOptions(seed=index))
            self.got.append(reply.text)
        return f"{key}: {' '.join(self.got)}"


def _fake_runs(monkeypatch, fail=lambda jobs: None) -> list[list[int]]:
    """Batches run, as the first token of each prompt; answers name their prompt."""
    runs: list[list[int]] = []

    def answer(job: PromptJob) -> Generated:
        text = f"{job.input_ids[0]}/{job.generation.seed}"
        return Generated(AnswerTexts(text, text, text), [], 0.0, 0.0, streamed=False)

    def run_together(jobs):
        fail(jobs)
        runs.append([job.input_ids[0] for job in jobs])
        return [answer(job) for job in jobs]

    def run_prompt(job):
        fail([job])
        runs.append([job.input_ids[0]])
        return answer(job)

    monkeypatch.setattr(steps, "run_together", run_together)
    monkeypatch.setattr(steps, "run_prompt", run_prompt)
    return runs


def _run(answering: PooledAnswering, items: dict[int, _Item], model=None, stop=lambda: False) -> dict[int, object]:
    model = model or _Model()
    outcomes = answering.run(((key, lambda item=item, key=key: item.steps(model, key)) for key, item in items.items()), stop)
    return {o.key: o.result if o.error is None else o.error for o in outcomes}


def test_batches_take_the_oldest_prompt_with_those_nearest_in_length(monkeypatch):
    runs = _fake_runs(monkeypatch)
    lengths = [50, 10, 52, 11, 49, 12, 300, 51]
    items = {key: _Item(length) for key, length in enumerate(lengths)}
    results = _run(PooledAnswering(2, (GarvidError,)), items)
    assert results == {key: f"{key}: {key}/0" for key in items}
    assert sorted(runs[0]) == [0, 4]  # the oldest (50) with the nearest in length (49), not with 10
    assert sorted(map(sorted, runs)) == sorted(map(sorted, [[0, 4], [2, 7], [1, 3], [5, 6]]))


def test_items_with_several_prompts_come_back_for_each(monkeypatch):
    runs = _fake_runs(monkeypatch)
    items = {0: _Item(5, prompts=3), 1: _Item(5, prompts=1), 2: _Item(5, prompts=2)}
    results = _run(PooledAnswering(4, (GarvidError,)), items)
    assert results == {0: "0: 0/0 0/1 0/2", 1: "1: 1/0", 2: "2: 2/0 2/1"}
    assert runs == [[0, 1, 2], [0, 2], [0]]


def test_out_of_memory_halves_the_batch_and_loses_no_item(monkeypatch):
    def fail(jobs):
        if len(jobs) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    runs = _fake_runs(monkeypatch, fail)
    told = []
    answering = PooledAnswering(8, (GarvidError,), on_smaller=lambda size, reason: told.append((size, reason)))
    items = {key: _Item(10 + key) for key in range(8)}
    assert _run(answering, items) == {key: f"{key}: {key}/0" for key in items}
    assert answering.per_pass == 2 and [size for size, _ in told] == [4, 2]
    assert "out of memory answering 8 prompts together" in told[0][1]
    assert all(len(batch) <= 2 for batch in runs)


def test_an_item_failing_in_a_batch_fails_alone_with_its_own_error(monkeypatch):
    def fail(jobs):
        if any(job.input_ids[0] == 3 for job in jobs):
            raise GarvidError("item 3's prompt is broken")

    _fake_runs(monkeypatch, fail)
    items = {key: _Item(10) for key in range(6)}
    results = _run(PooledAnswering(6, (GarvidError,)), items)
    assert isinstance(results.pop(3), GarvidError)
    assert results == {key: f"{key}: {key}/0" for key in results}


def test_stopping_finishes_the_items_in_flight_and_starts_no_other(monkeypatch):
    """Ctrl-C (``should_stop``) during an item of several prompts (describe, --window): that item
    is finished, every prompt of it, and recorded; no further item is started."""
    runs = _fake_runs(monkeypatch)
    items = {key: _Item(5, prompts=3) for key in range(4)}
    results = _run(PooledAnswering(1, (GarvidError,)), items, stop=lambda: len(runs) > 0)
    assert results == {0: "0: 0/0 0/1 0/2"} and runs == [[0], [0], [0]]
    assert [item.got for item in items.values()][1:] == [[], [], []]

    runs.clear()
    items = {key: _Item(5, prompts=2) for key in range(3)}
    results = _run(PooledAnswering(2, (GarvidError,)), items, stop=lambda: len(runs) > 0)
    assert results == {key: f"{key}: {key}/0 {key}/1" for key in (0, 1)}  # in the first pass: in flight, finished
    assert items[2].got == [] and runs == [[0, 1], [0, 1]]  # started ahead but never answered: closed, not run

    runs.clear()
    items = {key: _Item(5, prompts=2) for key in range(3)}
    starts = []

    def started_then_stopped(key):  # Ctrl-C while item 0 is being started (its keyframes decoded)
        starts.append(key)
        return items[key].steps(_Model(), key)

    answering = PooledAnswering(1, (GarvidError,))
    outcomes = list(answering.run(((key, lambda key=key: started_then_stopped(key)) for key in items), lambda: bool(starts)))
    assert [o.result for o in outcomes] == ["0: 0/0 0/1"] and starts == [0]  # the current item is finished


def test_auto_batch_size_is_one_on_a_cpu_and_fits_free_memory(monkeypatch):
    model = random_gar(gar_config("gar-8b"), seed=0)
    auto = PooledAnswering("auto", (GarvidError,))
    _fake_runs(monkeypatch)
    _run(auto, {0: _Item(40)}, model)
    assert auto.per_pass == CPU_PER_PASS == auto_prompts_per_pass(model, 1000)
    # the KV-cache arithmetic is the cache a prompt really fills
    embeds = model.input_embeddings(torch.tensor([[1, 2, 3, 4, 5, 6, 7]]))
    cache = model.new_cache()
    model.generate(embeds, max_new_tokens=1, eos_token_ids=(), prefix_length=6, prefix_cache=cache)
    held = sum(layer.keys.numel() * layer.keys.element_size() + layer.values.numel() * layer.values.element_size() for layer in cache.layers)
    assert held == 6 * kv_bytes_per_token(model)
    gib = 2**30
    assert fit_prompts_per_pass(40 * gib, 5000, 256 * 2**10) == 30  # (40 - 3 reserved) GiB / (5000 x 256 KiB) = 30.3 prompts
    assert fit_prompts_per_pass(2 * gib, 5000, 256 * 2**10) == 1 and fit_prompts_per_pass(10**15, 10, 10) == 64


def test_encoding_many_prompts_equals_encoding_each(tmp_path):
    """Prompts of different tile grids (separate roi_align calls) and frame counts, encoded together."""
    model = random_gar(gar_config("gar-8b"), seed=0)
    config = ImageConfig(max_num_tiles=4)
    rng = torch.Generator().manual_seed(0)

    def frame(width, height, box):
        image = (torch.rand(height, width, 3, generator=rng) * 255).to(torch.uint8).numpy()
        mask = torch.zeros(height, width, dtype=torch.bool)
        mask[box[1] : box[3], box[0] : box[2]] = True
        return preprocess_image(image, {0: mask.numpy(), 1: ~mask.numpy()}, config)

    jobs = [
        EncodeJob([frame(300, 200, (10, 10, 80, 90)), frame(300, 200, (100, 50, 200, 150))], [[0, 1], [1]]),
        EncodeJob([frame(900, 300, (0, 0, 400, 200))], [[0]]),
        EncodeJob([frame(300, 200, (5, 5, 50, 50))], [[1]], scaling="single"),
        EncodeJob([frame(300, 200, (5, 5, 50, 50))], [[]]),
    ]
    assert len({job.layout() for job in jobs}) == 3
    together = encode_many(model, jobs)
    for job, (features, crops) in zip(jobs, together):
        alone_features, alone_crops = encode_many(model, [job])[0]
        assert torch.allclose(features, alone_features, atol=1e-5) and crops.keys() == alone_crops.keys()
        assert all(torch.allclose(crops[slot], alone_crops[slot], atol=1e-5) for slot in crops)
    assert together[0][1][1].shape[:2] == (2, 256) and together[3][1] == {}  # slot 1 replayed from both frames


def test_run_prompts_equals_run_prompt_and_shares_one_encoding(monkeypatch):
    """Two prompts over one memoised encoding and a third over its own: one vision pass, answers as alone."""
    model = load_gar("tiny-random", dtype="fp32", device="cpu")
    config = ImageConfig(max_num_tiles=1)
    image = (torch.rand(120, 160, 3, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8).numpy()
    mask = torch.zeros(120, 160, dtype=torch.bool)
    mask[20:60, 30:90] = True
    frame = preprocess_image(image, {0: mask.numpy()}, config)
    tokenizer = load_tokenizer(model.checkpoint_dir)
    crop = model.config.crop_tokens_ids[0]
    image_ids = [model.config.image_token_id] * 256 * frame.num_tiles
    memo = steps.AnswerMemo()

    def job(question: list[int], with_memo: bool = True) -> PromptJob:
        ids = [128000, *image_ids, 5, *[crop] * 256, *question]
        return PromptJob(
            model, tokenizer, ids, [frame], [[0]], "reference", GenerationOptions(max_new_tokens=5),
            memo=memo if with_memo else None, encoding_key="frame" if with_memo else None,
        )  # fmt: skip

    questions = [[7, 8, 9], [11] * 20, [3]]
    jobs = [job(questions[0]), job(questions[1]), job(questions[2], with_memo=False)]
    alone = [steps.run_prompt(job(question, with_memo=False)) for question in questions]
    encoded = []
    real = steps.encode_many
    monkeypatch.setattr(steps, "encode_many", lambda model, jobs: encoded.append(len(jobs)) or real(model, jobs))
    together = steps.run_together(jobs)
    assert [g.token_ids for g in together] == [g.token_ids for g in alone] and len({tuple(g.token_ids) for g in alone}) > 1
    assert encoded == [2]  # the memoised frame once for both prompts, and the third's own
    with pytest.raises(ValueError, match="share their model"):
        steps.run_together([job([1]), PromptJob(**{**vars(job([1])), "generation": GenerationOptions(max_new_tokens=2)})])


@pytest.mark.slow
def test_requests_of_different_keyframes_and_regions_answer_as_alone(manifest, batches):
    """Requests with 1, 2 or 3 keyframes, one or two regions, a question or a description, batched together."""
    from garvid.batch.runner import answer_requests
    from garvid.qa.reporting import Reporter
    from garvid.qa.video_request import VideoRequest
    from garvid.regions.input import RegionInput

    root = manifest.parent
    model = load_gar("tiny-random", dtype="fp32", device="cpu")
    base = AnswerOptions(
        model=ModelOptions("tiny-random", device="cpu"),
        tracking=TrackingOptions("tiny-random", cache_dir=root / "cache"),
        generation=GenerationOptions(max_new_tokens=5),
    )

    def request(clip: str, frames: int, question: str | None) -> VideoRequest:
        options = replace(base, keyframes=KeyframeOptions(frames=frames))
        return VideoRequest(root / f"{clip}.mp4", RegionInput(masks=(root / f"{clip}.png",)), question, options)

    requests = [
        request("cups_a", 2, "what does object 1 do?"),
        request("cups_a", 3, "what does object 2 do to object 1?"),
        request("cups_b", 1, None),
        request("cups_b", 2, "where is #2?"),
    ]

    def answers(batch_size: int) -> list[list[list[int]]]:
        outcomes = sorted(answer_requests(requests, model, batch_size, Reporter(), lambda: False), key=lambda o: o.key)
        assert all(o.error is None for o in outcomes), [o.error for o in outcomes]
        return [[a.token_ids for a in o.result.answers] for o in outcomes]

    alone = answers(1)
    assert batches == [] and [len(a) for a in alone] == [1, 1, 2, 1]  # describe: one answer per object
    assert answers(3) == alone and max(batches) == 3
    assert len({tuple(ids) for item in alone for ids in item}) > 1
