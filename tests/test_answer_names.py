"""Answers name their objects: GAR's ``<PromptK>`` tokens read as the user's names for the
objects in every user-facing answer, the raw text kept in the JSON, benchmarks scoring the
reference's text (tokens dropped)."""

from __future__ import annotations

import json

import pytest
from garvid_cli.main import run

from garvid.gar.model import GARModel
from garvid.gar.tokenizer import build_tiny_tokenizer, prompt_token

TINY = ["--model", "tiny-random", "--tracker", "tiny-random", "--device", "cpu", "--frames", "2", "--no-cache"]


@pytest.fixture
def scripted_answer(monkeypatch):
    """GAR "generates" ``<Prompt1> is beside <Prompt0>.``, streamed token by token."""
    tokenizer = build_tiny_tokenizer()
    ids: list[int] = []
    for part in [1, " is beside ", 0, "."]:
        if isinstance(part, int):
            ids.append(tokenizer.convert_tokens_to_ids(prompt_token(part)))
        else:
            ids += tokenizer(part, add_special_tokens=False)["input_ids"]

    def generate(self, inputs_embeds, *, on_token=None, **_) -> list[int]:
        for token in ids:
            if on_token is not None:
                on_token(token)
        return list(ids)

    monkeypatch.setattr(GARModel, "generate", generate)


def test_ask_names_the_objects_in_text_and_json(two_object_clip, scripted_answer, tmp_path, capsys):
    video, mask = two_object_clip
    out = tmp_path / "answer.json"
    args = ["ask", str(video), "what does object 2 do to object 1?", "--mask", str(mask), *TINY]
    assert run(args) == 0
    assert capsys.readouterr().out == "object 2 is beside object 1.\n"  # streamed to the terminal
    assert run([*args, "-o", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["answer"] == "object 2 is beside object 1."
    assert data["raw_answer"] == "<Prompt1> is beside <Prompt0>."


def test_windows_and_descriptions_name_their_objects(two_object_clip, scripted_answer, tmp_path):
    video, mask = two_object_clip
    out = tmp_path / "windows.json"
    assert run(["ask", str(video), "what does object 2 do to object 1?", "--mask", str(mask), *TINY, "--window", "0.75", "-o", str(out)]) == 0
    answers = json.loads(out.read_text())["answers"]
    assert len(answers) == 2 and {a["text"] for a in answers} == {"object 2 is beside object 1."}
    assert {a["raw_text"] for a in answers} == {"<Prompt1> is beside <Prompt0>."}
    # describing fills one slot (<Prompt1>) with each object in turn; slot 0 holds nothing there
    out = tmp_path / "descriptions.json"
    assert run(["describe", str(video), "--mask", str(mask), *TINY, "-o", str(out)]) == 0
    objects = json.loads(out.read_text())["descriptions"][0]["objects"]
    assert [(o["id"], o["text"]) for o in objects] == [(1, "object 1 is beside."), (2, "object 2 is beside.")]


def test_object_phrases_name_their_objects(two_object_clip, scripted_answer, capsys):
    video, _ = two_object_clip
    args = ["ask", str(video), "what does object 2 do to object 1?", "--object", "the red cup", "--object", "ball", *TINY]
    assert run([*args, "--detector", "tiny-random-sam3", "--object-threshold", "0"]) == 0
    assert capsys.readouterr().out == "ball is beside the red cup.\n"


def test_image_answer_names_its_objects(scripted_answer, tmp_path):
    import numpy as np
    from PIL import Image

    photo, mask, out = tmp_path / "photo.png", tmp_path / "mask.png", tmp_path / "answer.json"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(photo)
    labels = np.zeros((64, 96), dtype=np.uint8)
    labels[5:25, 5:25], labels[30:60, 50:90] = 1, 2
    Image.fromarray(labels).save(mask)
    args = ["image", str(photo), "what does object 2 do to object 1?", "--mask", str(mask), "--model", "tiny-random", "--device", "cpu"]
    assert run([*args, "--format", "json", "-o", str(out)]) == 0
    data = json.loads(out.read_text())
    assert (data["answer"], data["raw_answer"]) == ("object 2 is beside object 1.", "<Prompt1> is beside <Prompt0>.")
    assert "reference_answer" not in data
