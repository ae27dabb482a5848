"""garvid eval: letter extraction, resumable results, VideoRefer-BenchQ and GAR-Bench-VQA runs."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from garvid_cli.main import run
from PIL import Image

from garvid.errors import GarvidError
from garvid.eval.choices import choices_question, extract_choice
from garvid.eval.results import ResultLog, accuracy_table
from garvid.eval.videorefer import (
    GivenMasks,
    evaluate_item,
    object_masks,
    prompt_question,
    videorefer_letter,
    videorefer_question,
)
from garvid.options import AnswerOptions
from garvid.qa.video_request import VideoRequest
from garvid.regions.masks import decode_rle, encode_rle

OPTIONS = ["(A) It moves left.", "(B) It stays still.", "(C) It is lifted up.", "(D) It disappears."]
TINY = ["--model", "tiny-random", "--device", "cpu", "--max-new-tokens", "4"]


@pytest.mark.parametrize(
    ("output", "letter"),
    [
        ("B", "B"), ("(B)", "B"), ("B.", "B"), ("b", "B"), ("  c  ", "C"), ("The answer is C", "C"),
        ("the answer is (d)", "D"), ("Answer: A", "A"), ("It is (C).", "C"), ("C) It is lifted up.", "C"),
        ("It is lifted up.", "C"), ("A cup is on the table", None), ("no letter here", None), ("E", None), ("", None),
    ],
)  # fmt: skip
def test_letter_extraction_on_tricky_outputs(output, letter):
    assert extract_choice(output, OPTIONS) == letter


@pytest.mark.parametrize(
    ("output", "options", "letter"),
    [
        ("I don't know", ["(A) Yes", "(B) No"], None),
        ("Nothing happens", ["(A) Yes", "(B) No"], None),
        ("Not sure", ["(A) Yes", "(B) No"], None),
        ("No, it does not.", ["(A) Yes", "(B) No"], "B"),
        ("The answer is a red cup", ["(A) Yes", "(B) No"], None),
        ("It is a catastrophe", ["(A) dog", "(B) bird", "(C) fish", "(D) cat"], None),
        ("It is a cat.", ["(A) dog", "(B) bird", "(C) fish", "(D) cat"], "D"),
    ],
)
def test_non_answers_pick_no_option(output, options, letter):
    """Option texts match as whole words, and a bare letter only where it stands as a choice."""
    assert extract_choice(output, options) == letter


def test_question_layout_matches_the_reference():
    assert choices_question("Which one?", ["A. x", "B. y"]) == "Question: Which one?\nOptions:\nA. x\nB. y"
    assert prompt_question("What is <object0><region> doing to <object1> <region>?") == "What is <Prompt0> doing to <Prompt1>?"
    # labels are names: the j-th object mentioned takes slot j (VideoRefer's own mapping)
    assert prompt_question("Is <object3><region> near <object1><region>? Is <object3><region> red?") == (
        "Is <Prompt0> near <Prompt1>? Is <Prompt0> red?"
    )


def test_annotation_entries_follow_the_question_order():
    rle = encode_rle(np.eye(4, dtype=bool))
    item = {"Question": "What is <object3><region> doing?", "annotation": [{"0": {"segmentation": rle}, "5": {"segmentation": None}}]}
    assert object_masks(item) == [{0: rle}]  # a null segmentation: not annotated on that frame
    twice = {"Question": "Is <object2><region> left of <object2><region>?", "annotation": [{"0": {"segmentation": rle}}] * 2}
    assert len(object_masks(twice)) == 1
    with pytest.raises(GarvidError, match="names 2 object"):
        object_masks({"Question": "<object0><region> and <object1><region>", "annotation": [{"0": {"segmentation": rle}}]})


def test_result_log_resumes_and_drops_a_cut_line(tmp_path):
    path = tmp_path / "r.jsonl"
    log = ResultLog(path)
    log.add({"id": "a", "type": "t", "correct": True})
    with open(path, "a") as handle:
        handle.write('{"id": "b", "type": "t", "corr')  # killed mid-line
    again = ResultLog(path)
    assert again.done("a") and not again.done("b")
    again.add({"id": "b", "type": "t", "correct": False})
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "b"]


def test_accuracy_table_in_published_order():
    records = [{"type": t, "correct": c} for t, c in [("Sequential", True), ("Basic", True), ("Basic", False), ("Basic", True)]]
    table = accuracy_table(records, ["Basic", "Sequential", "Future"])
    assert list(table) == ["Basic", "Sequential", "Average"]
    assert table["Basic"] == {"correct": 2, "total": 3, "accuracy": 66.7} and table["Average"]["accuracy"] == 75.0


# --- a small VideoRefer-BenchQ-format set from cups.mp4 --------------------------------------


@pytest.fixture(scope="module")
def videorefer(tmp_path_factory, media) -> tuple[Path, Path]:
    """Frame folder ``cups/`` (1 s at 160x90, JPEG) and three questions about the ball and the held cup
    (masks on frames 0, 10 and 20)."""
    root = tmp_path_factory.mktemp("videorefer")
    frames = root / "videos" / "cups"
    frames.mkdir(parents=True)
    args = ["ffmpeg", "-v", "error", "-i", str(media / "cups.mp4"), "-t", "1", "-vf", "scale=160:90", "-q:v", "3"]
    subprocess.run([*args, str(frames / "%05d.jpg")], check=True)
    labels = np.asarray(Image.open(media / "cups_first_frame.png").resize((160, 90), Image.NEAREST))
    ball, cup = ({str(f): {"segmentation": encode_rle(labels == value)} for f in (0, 10, 20)} for value in (1, 2))
    questions = [  # one annotation entry per object the question names, in its order
        ("Basic Questions", "What is <object0><region>?", "(A) A ball", [ball]),
        ("Sequential Questions", "What does <object1><region> do?", "(C) It is lifted up.", [cup]),
        ("Relationship Questions", "Where is <object0><region> relative to <object1><region>?", "(B) Under it", [ball, cup]),
    ]
    items = [
        {
            "id": index,
            "video": "cups",
            "Question": question,
            "type": kind,
            "options": ["(A) A ball", "(B) Under it", "(C) It is lifted up.", "(D) None"],
            "Answer": answer,
            "frame_idx": "10",
            "annotation": annotation,
        }
        for index, (kind, question, answer, annotation) in enumerate(questions)
    ]
    path = root / "VideoRefer-BenchQ.json"
    path.write_text(json.dumps(items))
    return path, root / "videos"


def test_item_question_masks_and_prompt(videorefer):
    annotations, root = videorefer
    item = json.loads(annotations.read_text())[2]
    seen = {}

    def answer(request: VideoRequest, given):
        seen.update(request=request, given=given, masks=[mask.array for mask in request.regions.masks])
        return "(B)"

    record = evaluate_item(item, root, AnswerOptions(), "multi", answer, "garvid")
    assert record == {
        "id": 2, "type": "Relationship Questions", "answer": "B", "protocol": "garvid", "mask_mode": "multi",
        "prediction": "B", "correct": True, "output": "(B)",
    }  # fmt: skip
    request = seen["request"]
    assert request.question.startswith("Question: Where is <Prompt0> relative to <Prompt1>?\nOptions:\n(A) A ball")
    assert request.options.prompt.multiple_choice and request.regions.frame == 10 and request.video == root / "cups"
    assert not request.options.tracking.use_cache and isinstance(seen["given"], GivenMasks) and not request.literal_question
    assert np.array_equal(seen["masks"][1], decode_rle(item["annotation"][1]["10"]["segmentation"]))


def test_videorefer_question_string_as_videorefer_writes_it():
    question = videorefer_question("What is <object0><region> doing to <object3> <region>?", ["(A) Lifts it", "(B) Nothing"])
    assert question == (
        "What is <object0>[<Prompt0>] doing to <object3> [<Prompt1>]? (A) Lifts it (B) Nothing. "
        "Answer with the option's letter from the given choices directly."
    )


@pytest.mark.parametrize(
    ("output", "letter"),
    [
        ("Answer: B", "A"), ("(B)", "B"), ("The answer is (C).", "C"), ("B) It stays still.", "B"), ("B.", "B"),
        ("b", "b"), ("It is lifted up.", "I"), ("see (D) and B)", "D"), ("x C) y", "C"), ("...", None), ("", None),
    ],
)  # fmt: skip
def test_videorefer_letter_extraction(output, letter):
    assert videorefer_letter(output) == letter


def test_videorefer_protocol_item(videorefer):
    annotations, root = videorefer
    item = json.loads(annotations.read_text())[2]
    seen = {}

    def answer(request: VideoRequest, given):
        seen.update(request=request, given=given)
        return "Answer: B"  # VideoRefer reads its first character: A

    record = evaluate_item(item, root, AnswerOptions(), "single", answer)
    request = seen["request"]
    assert request.question == (
        "Where is <object0>[<Prompt0>] relative to <object1>[<Prompt1>]? (A) A ball (B) Under it (C) It is lifted up. (D) None. "
        "Answer with the option's letter from the given choices directly."
    )
    assert request.literal_question and not request.options.prompt.multiple_choice and seen["given"] is None
    assert (record["protocol"], record["answer"], record["prediction"], record["correct"]) == ("videorefer", "B", "A", False)
    assert evaluate_item(item, root, AnswerOptions(), "single", lambda r, g: "b")["correct"]


@pytest.mark.parametrize("mode", ["multi", pytest.param("single", marks=pytest.mark.slow)])
def test_videorefer_run_table_and_resume(videorefer, tmp_path, capsys, mode):
    annotations, root = videorefer
    results = tmp_path / "results.jsonl"
    base = ["eval", "videorefer-q", str(annotations), "--video-root", str(root), "--mask-mode", mode, "--fps", "30"]
    common = [*base, *TINY, "--tracker", "tiny-random", "--frames", "2", "-o", str(results), "--no-cache"]
    assert run([*common, "--limit", "1"]) == 0
    first = results.read_text()
    assert run(common) == 0
    err = capsys.readouterr().err
    lines = results.read_text().splitlines()
    assert results.read_text().startswith(first) and len(lines) == 3  # item 0 was not asked again
    records = [json.loads(line) for line in lines]
    assert all("prediction" in r and r["answer"] in "ABC" and "error" not in r for r in records)
    for column in ("Basic Questions", "Sequential Questions", "Relationship Questions", "Average"):
        assert column in err
    assert "71.9" in err  # VideoRefer-7B's published average, printed for comparison
    summary = json.loads(results.with_suffix(".summary.json").read_text())
    assert summary["published"]["VideoRefer-7B"]["Average"] == 71.9
    assert summary["accuracy"]["Average"]["total"] == 3 and summary["answered"] == summary["items"] == 3
    assert summary["mask_mode"] == mode and summary["protocol"] == "temporal-v1" and summary["errors"] == 0
    assert summary["max_new_tokens"] == 4 and summary["attn"] == "sdpa" and summary["eval_protocol"] == "videorefer"
    assert summary["setup"]["this run"].startswith(f"videorefer protocol, {mode}-frame masks")
    assert "VideoRefer-7B: videorefer protocol, single-frame masks" in " ".join(err.split())
    assert all(r["protocol"] == "videorefer" and r["mask_mode"] == mode for r in records)
    # garvid's protocol is the named alternative, with multi-frame masks by default; never mixed into a results file
    assert run([*base[:-2], *TINY, "--frames", "2", "-o", str(results), "--eval-protocol", "garvid"]) == 2
    assert "made with protocol videorefer" in capsys.readouterr().err
    other = tmp_path / "garvid.jsonl"
    assert run([*base[:-4], "--fps", "30", *TINY, "--frames", "2", "-o", str(other), "--eval-protocol", "garvid", "--limit", "1"]) == 0
    summary = json.loads(other.with_suffix(".summary.json").read_text())
    assert summary["eval_protocol"] == "garvid" and summary["mask_mode"] == "multi"


@pytest.mark.slow
def test_interrupted_videorefer_run_resumes(videorefer, tmp_path):
    """SIGINT after the first finished item: exit 130, whole lines only; a rerun adds the rest."""
    annotations, root = videorefer
    items = json.loads(annotations.read_text())
    many = tmp_path / "many.json"
    many.write_text(json.dumps([{**items[i % 3], "id": f"q{i}"} for i in range(8)]))
    results = tmp_path / "results.jsonl"
    args = ["eval", "videorefer-q", str(many), "--video-root", str(root), *TINY, "--frames", "2", "-o", str(results), "--mask-mode", "multi"]
    process = subprocess.Popen([sys.executable, "-m", "garvid_cli", *args], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not (results.is_file() and results.read_text()) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 130 and "Traceback" not in err, err
    first = results.read_text()
    assert first.endswith("\n") and 1 <= len(first.splitlines()) < 8
    assert run(args) == 0
    assert results.read_text().startswith(first)
    assert sorted(json.loads(line)["id"] for line in results.read_text().splitlines()) == sorted(f"q{i}" for i in range(8))


def _gar_bench(folder: Path, media: Path) -> Path:
    frame = folder / "images" / "frame0.png"
    frame.parent.mkdir(parents=True)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(media / "cups.mp4"), "-frames:v", "1", "-vf", "scale=320:180", str(frame)], check=True)
    labels = np.asarray(Image.open(media / "cups_first_frame.png").resize((320, 180), Image.NEAREST))
    rles = [encode_rle(labels == value) for value in (1, 2, 3, 4)]
    items = [
        {"image": "images/frame0.png", "mask_rles": rles[:2], "question": "Which of <Prompt0> or <Prompt1> is yellow?",
         "choices": ["A. <Prompt0>", "B. <Prompt1>"], "answer": "A", "type": "color"},
        {"image": "images/frame0.png", "mask_rles": rles[:1], "question": "What shape is <Prompt0>?",
         "choices": ["A. round", "B. square"], "answer": "A", "type": "shape"},
        {"image": "images/frame0.png", "mask_rles": rles + rles[:2], "question": "Which is beside <Prompt1>, <Prompt2>, <Prompt3> and <Prompt4>?",
         "choices": ["A. <Prompt5>", "B. <Prompt0>"], "answer": "A", "type": "relation"},
    ]  # fmt: skip
    for index, item in enumerate(items):
        item["id"] = f"vqa_{index}"
    path = folder / "GAR-Bench-VQA.json"
    path.write_text(json.dumps(items))
    return path


def test_gar_bench_vqa_run(media, tmp_path, capsys):
    """Reference-compatible by default: the six-region item is asked as the reference asked it."""
    annotations = _gar_bench(tmp_path, media)
    results = tmp_path / "vqa.jsonl"
    assert run(["eval", "gar-bench-vqa", str(annotations), *TINY, "-o", str(results)]) == 0
    err = capsys.readouterr().err
    records = {r["id"]: r for r in map(json.loads, results.read_text().splitlines())}
    assert set(records) == {"vqa_0", "vqa_1", "vqa_2"}
    assert not any("error" in r for r in records.values()) and "output" in records["vqa_2"]
    assert sorted(records["vqa_2"]["region_order"]) == list(range(6)) and records["vqa_1"]["region_order"] == [0]
    assert "could not be asked" not in err and "57.8" in err  # GAR-8B's reference overall beside the run
    summary = json.loads(results.with_suffix(".summary.json").read_text())
    assert summary["errors"] == 0 and summary["mode"] == "reference-compat"
    assert summary["max_new_tokens"] == 4 and summary["attn"] == "sdpa"
    for column in ("color", "shape", "relation", "Average"):
        assert column in err


def test_gar_bench_reads_images_as_stored_like_the_reference(media, tmp_path, capsys):
    """Benchmark masks fit the stored pixels (the reference ignores EXIF orientation)."""
    annotations = _gar_bench(tmp_path, media)
    frame = tmp_path / "images" / "frame0.png"
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn right to display": garvid image would show it 180x320
    Image.open(frame).save(frame, exif=exif)
    assert Image.open(frame).getexif()[0x0112] == 6
    results = tmp_path / "vqa.jsonl"
    assert run(["eval", "gar-bench-vqa", str(annotations), *TINY, "-o", str(results)]) == 0
    records = {r["id"]: r for r in map(json.loads, results.read_text().splitlines())}
    assert "error" not in records["vqa_0"] and "error" not in records["vqa_1"]


def test_gar_bench_vqa_corrected_run(media, tmp_path, capsys):
    annotations = _gar_bench(tmp_path, media)
    results = tmp_path / "vqa.jsonl"
    assert run(["eval", "gar-bench-vqa", str(annotations), *TINY, "--corrected", "-o", str(results)]) == 0
    err = capsys.readouterr().err
    records = {r["id"]: r for r in map(json.loads, results.read_text().splitlines())}
    assert "error" not in records["vqa_0"] and "region_order" not in records["vqa_0"]
    assert records["vqa_2"]["correct"] is False and "outside 1..5" in records["vqa_2"]["error"]  # six regions
    assert "1 item(s) could not be asked" in err
    summary = json.loads(results.with_suffix(".summary.json").read_text())
    assert summary["errors"] == 1 and summary["mode"] == "corrected"
    # a results file is never resumed in the other mode
    assert run(["eval", "gar-bench-vqa", str(annotations), *TINY, "-o", str(results)]) == 2
    assert "made with mode corrected" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["videorefer-q", "gar-bench-vqa"])
def test_eval_answer_length_is_an_option_defaulting_to_64(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert run(["eval", command, "--help"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if "--max-new-tokens" in line)
    assert "[default: 64]" in line


def test_unknown_eval_protocol_is_one_line_before_any_work(videorefer, tmp_path, capsys):
    annotations, root = videorefer
    results = tmp_path / "r.jsonl"
    args = ["eval", "videorefer-q", str(annotations), "--video-root", str(root), *TINY, "--eval-protocol", "gpt", "-o", str(results)]
    assert run(args) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("garvid: error: ")]
    assert errors == ["garvid: error: --eval-protocol must be videorefer or garvid, not 'gpt'"] and not results.exists()


def test_malformed_items_are_their_own_errors(videorefer, tmp_path, capsys):
    """A non-integer frame key, a bad or wrong-size RLE, an annotation that is a list: each item
    is recorded with its error; the run goes on and ends normally."""
    annotations, root = videorefer
    good = json.loads(annotations.read_text())[0]
    ball = good["annotation"][0]
    wrong_size = {frame: {"segmentation": encode_rle(np.ones((45, 80), dtype=bool))} for frame in ball}
    broken = {
        "key": {**ball, "first": ball["0"]},
        "rle": {**ball, "10": {"segmentation": {"size": [90, 160], "counts": "zzzz"}}},
        "list": [ball["0"], ball["10"]],
        "size": wrong_size,
    }
    items = [{**good, "id": name, "annotation": [annotation]} for name, annotation in broken.items()]
    items.append({**good, "id": "options", "options": "(A) A ball"})
    items.append({**good, "id": "text\udcff", "Question": "What is \ud800<object0><region>?"})  # not valid Unicode
    questions = tmp_path / "broken.json"
    questions.write_text(json.dumps(items))
    results = tmp_path / "results.jsonl"
    args = ["eval", "videorefer-q", str(questions), "--video-root", str(root), *TINY, "--frames", "2", "--no-cache", "-o", str(results)]
    assert run(args) == 0
    err = capsys.readouterr().err
    records = {r["id"]: r for r in map(json.loads, results.read_text().splitlines())}
    assert set(records) == {"key", "rle", "list", "size", "options", "text\\udcff"} and "Traceback" not in err
    assert all(r["correct"] is False and r["prediction"] is None for r in records.values())
    assert "'first', not a frame number" in records["key"]["error"] and "invalid RLE mask" in records["rle"]["error"]
    assert "not be a list" in records["list"]["error"] and "80x45" in records["size"]["error"]
    assert "non-empty list of options" in records["options"]["error"]
    assert records["text\\udcff"]["error"] == "item 5 holds '\\udcff', which is not valid Unicode text (bytes that are not UTF-8?)"
    assert "6 item(s) could not be asked" in err


def test_malformed_gar_bench_items_are_their_own_errors(media, tmp_path, capsys):
    annotations = _gar_bench(tmp_path, media)
    items = json.loads(annotations.read_text())[:1]
    good = items[0]
    items += [
        {**good, "id": "rle", "mask_rles": [{"size": [180, 320], "counts": "0"}]},
        {**good, "id": "dict", "mask_rles": {"0": good["mask_rles"][0]}},
        {**good, "id": "size", "mask_rles": [encode_rle(np.ones((10, 10), dtype=bool))] * 2},  # both regions
        {**good, "id": "choices", "choices": 3},
        {**good, "id": "text", "question": "Is it \udcff?"},  # not valid Unicode: this item alone fails
        {**good, "id": "none", "mask_rles": []},
    ]
    annotations.write_text(json.dumps(items))
    results = tmp_path / "vqa.jsonl"
    assert run(["eval", "gar-bench-vqa", str(annotations), *TINY, "-o", str(results)]) == 0
    records = {r["id"]: r for r in map(json.loads, results.read_text().splitlines())}
    assert "error" not in records["vqa_0"] and "Traceback" not in capsys.readouterr().err
    assert "invalid RLE mask" in records["rle"]["error"] and "must be a list of masks" in records["dict"]["error"]
    assert "10x10" in records["size"]["error"] and "list of options" in records["choices"]["error"]
    assert "'\\udcff', which is not valid Unicode text" in records["text"]["error"]
    assert records["none"]["error"] == "the item has no masks ('mask_rles' is empty)"


@pytest.mark.parametrize("benchmark", ["videorefer-q", "gar-bench-vqa"])
def test_repeated_item_ids_are_refused_at_load(videorefer, tmp_path, capsys, benchmark):
    annotations, root = videorefer
    items = json.loads(annotations.read_text())
    if benchmark == "gar-bench-vqa":
        items = [{"image": "same.png", "mask_rles": [], "question": "?", "choices": ["A. x"], "answer": "A", "type": "t"}] * 2
    else:
        items[2]["id"] = items[0]["id"]
    questions = tmp_path / "dup.json"
    questions.write_text(json.dumps(items))
    results = tmp_path / "r.jsonl"
    assert run(["eval", benchmark, str(questions), "--video-root" if benchmark == "videorefer-q" else "--image-root", str(root), *TINY, "-o", str(results)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("garvid: error: ") and len(err.splitlines()) == 1 and "repeats the id" in err
    assert not results.exists()


def test_a_second_run_on_one_results_file_is_refused(videorefer, tmp_path, capsys):
    from garvid.files import exclusive_lock

    annotations, root = videorefer
    results = tmp_path / "r.jsonl"
    with exclusive_lock(tmp_path / "r.jsonl.lock", "busy"):  # as if another garvid eval were running
        assert run(["eval", "videorefer-q", str(annotations), "--video-root", str(root), *TINY, "-o", str(results)]) == 2
    assert "another garvid eval is writing to" in capsys.readouterr().err and not results.exists()


def test_a_results_file_is_resumed_only_by_the_same_setup(media, tmp_path, capsys):
    """Another model or answer length would mix two setups' answers in one accuracy."""
    annotations = _gar_bench(tmp_path, media)
    results = tmp_path / "vqa.jsonl"
    assert run(["eval", "gar-bench-vqa", str(annotations), *TINY, "--limit", "1", "-o", str(results)]) == 0
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert records[0]["model"] == "tiny-random" and records[0]["max_new_tokens"] == "4"
    capsys.readouterr()
    assert run(["eval", "gar-bench-vqa", str(annotations), *TINY, "--max-new-tokens", "5", "-o", str(results)]) == 2
    assert "made with max_new_tokens 4, not 5" in capsys.readouterr().err
    assert [json.loads(line) for line in results.read_text().splitlines()] == records  # left as it was


# --- --batch-size: items answered together, records as one at a time --------------------------


@pytest.fixture
def batches(monkeypatch) -> list[list]:
    """The prompts of every batch of more than one that PooledAnswering runs together."""
    import garvid.qa.steps as batching

    seen: list[list] = []
    together = batching.run_together

    def spy(jobs):
        seen.append(list(jobs))
        return together(jobs)

    monkeypatch.setattr(batching, "run_together", spy)
    return seen


def _records(path: Path) -> dict[str, dict]:
    """The records by id, an error's temporary mask folder named alike in every run."""
    records = {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}
    for record in records.values():
        if record.get("error"):
            record["error"] = re.sub(r"garvid-eval-[^/]+", "garvid-eval-*", record["error"])
    return records


@pytest.mark.parametrize(("mode", "count"), [("multi", 6), ("single", 3)])
def test_videorefer_batched_records_equal_one_at_a_time(videorefer, tmp_path, batches, mode, count):
    """Greedy fp32: answering three items' prompts per forward pass changes no answer, and an item
    that fails (masks of the wrong size) fails alone, as it would one at a time."""
    annotations, root = videorefer
    items = json.loads(annotations.read_text())
    wrong_size = {frame: {"segmentation": encode_rle(np.ones((45, 80), dtype=bool))} for frame in ("0", "10", "20")}
    many = [{**items[i % 3], "id": f"q{i}"} for i in range(count)] + [{**items[0], "id": "size", "annotation": [wrong_size]}]
    questions = tmp_path / "many.json"
    questions.write_text(json.dumps(many))
    args = ["eval", "videorefer-q", str(questions), "--video-root", str(root), "--mask-mode", mode, "--fps", "30", *TINY]
    # single mode: the batched run tracks every item, the one-at-a-time run finds the tracks in the cache
    args += ["--dtype", "fp32", "--tracker", "tiny-random", "--frames", "2", "--cache-dir", str(tmp_path / "cache")]
    records = {}
    for size in ("3", "1"):
        results = tmp_path / f"batch{size}.jsonl"
        assert run([*args, "--batch-size", size, "-o", str(results)]) == 0
        records[size] = _records(results)
        summary = json.loads(results.with_suffix(".summary.json").read_text())
        assert summary["batch_size"] == int(size) and summary["answered_this_run"] == count and summary["items_per_minute"] > 0
    assert records["3"] == records["1"] and len(records["1"]) == count + 1
    assert [r["id"] for r in records["1"].values() if "error" in r] == ["size"] and "80x45" in records["3"]["size"]["error"]
    assert batches and max(len(batch) for batch in batches) == 3  # only the --batch-size 3 run batches


def _gar_bench_two_sizes(folder: Path, media: Path) -> Path:
    """GAR-Bench-VQA items on a 320x180 and a 180x320 image (tile grids 5x3 and 3x5), with one,
    two or six regions."""
    annotations = _gar_bench(folder, media)
    items = json.loads(annotations.read_text())
    tall = folder / "images" / "tall.png"
    Image.open(folder / "images" / "frame0.png").transpose(Image.Transpose.TRANSPOSE).save(tall)
    labels = np.asarray(Image.open(media / "cups_first_frame.png").resize((320, 180), Image.NEAREST)).T
    rles = [encode_rle(labels == value) for value in (1, 2)]
    for index, item in enumerate(items[:2]):
        items.append({**item, "id": f"tall_{index}", "image": "images/tall.png", "mask_rles": rles[: len(item["mask_rles"])]})
    annotations.write_text(json.dumps(items))
    return annotations


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["--reference-compat", "--corrected"])
def test_gar_bench_batched_records_equal_one_at_a_time(media, tmp_path, batches, mode):
    """Items with other tile grids and region counts share batches; every record is as one at a time."""
    annotations = _gar_bench_two_sizes(tmp_path, media)
    records = {}
    for size in ("1", "3"):
        results = tmp_path / f"batch{size}.jsonl"
        assert run(["eval", "gar-bench-vqa", str(annotations), *TINY, "--dtype", "fp32", mode, "--batch-size", size, "-o", str(results)]) == 0
        records[size] = _records(results)
    assert records["3"] == records["1"] and len(records["1"]) == 5
    assert ("error" in records["1"]["vqa_2"]) == (mode == "--corrected")  # six regions: only the reference asks it
    assert batches and max(len(batch) for batch in batches) > 1
    assert any(len({job.frames[0].grid for job in batch}) > 1 for batch in batches)  # 5x3 and 3x5 tiles together


@pytest.mark.parametrize("command", ["videorefer-q", "gar-bench-vqa"])
@pytest.mark.parametrize("size", ["0", "-1", "x", "2.5"])
def test_bad_batch_size_is_one_line_before_any_model_loads(media, videorefer, tmp_path, capsys, monkeypatch, command, size):
    import garvid.gar.loading

    monkeypatch.setattr(garvid.gar.loading, "load_gar", lambda *args, **kwargs: pytest.fail("a model was loaded"))
    annotations, root = videorefer
    if command == "gar-bench-vqa":
        annotations, root = _gar_bench(tmp_path, media), tmp_path
    results = tmp_path / "r.jsonl"
    where = "--video-root" if command == "videorefer-q" else "--image-root"
    assert run(["eval", command, str(annotations), where, str(root), *TINY, f"--batch-size={size}", "-o", str(results)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"garvid: error: --batch-size must be a whole number of at least 1, or auto; not '{size}'"
    assert not results.exists()


def test_items_write_no_mask_files(videorefer, tmp_path, monkeypatch):
    """Each item's prompt masks are passed in memory: a batched run stopped early with items
    still in flight leaves nothing in the temporary folder, and writes nothing there meanwhile."""
    from garvid.eval.videorefer import run_videorefer
    from garvid.options import GenerationOptions, KeyframeOptions, ModelOptions, TrackingOptions

    annotations, root = videorefer
    items = [{**item, "id": f"q{i}"} for i, item in enumerate(json.loads(annotations.read_text()) * 3)]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    template = AnswerOptions(
        model=ModelOptions("tiny-random", device="cpu"),
        tracking=TrackingOptions(fps=30, use_cache=False),
        keyframes=KeyframeOptions(frames=2),
        generation=GenerationOptions(max_new_tokens=4),
    )
    written: list[int] = []
    log = ResultLog(tmp_path / "r.jsonl")
    answered = run_videorefer(
        items, root, template, "multi", log, on_item=lambda record: written.append(len(list(scratch.iterdir()))),
        should_stop=lambda: bool(written), per_pass=3,
    )  # fmt: skip
    assert answered == len(log.records) == 3 and len(items) == 9  # one batch, then stopped
    assert written and set(written) == {0} and not list(scratch.iterdir())


def test_out_of_memory_without_a_message_is_the_items_error_line(media, tmp_path, capsys, monkeypatch):
    """A MemoryError carries no text: the record names it, the run goes on (it used to crash the run)."""
    from garvid.eval import gar_bench

    annotations = _gar_bench(tmp_path, media)
    real = gar_bench.layout_steps

    def short_of_memory(image, layout, model, **options):
        if len(layout.masks) == 1:
            raise MemoryError()
        return (yield from real(image, layout, model, **options))

    monkeypatch.setattr(gar_bench, "layout_steps", short_of_memory)
    results = tmp_path / "vqa.jsonl"
    assert run(["eval", "gar-bench-vqa", str(annotations), *TINY, "-o", str(results)]) == 0
    records = {r["id"]: r for r in map(json.loads, results.read_text().splitlines())}
    assert records["vqa_1"]["error"] == "out of memory: MemoryError" and records["vqa_1"]["prediction"] is None
    assert "error" not in records["vqa_0"] and "Traceback" not in capsys.readouterr().err
