"""``garvid when`` on tracked videos with the tiny-random GAR: the score is the yes/no probability
of the same prompt's first answer token, each keyframe is encoded once, batch sizes agree."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from garvid.errors import GarvidError, OptionError
from garvid.gar.model import GARModel
from garvid.options import AnswerOptions, KeyframeOptions, ModelOptions, TrackingOptions, WhenOptions
from garvid.qa.context import AnswerContext
from garvid.qa.planning import TemporalPromptBuilder
from garvid.qa.video_request import VideoRequest
from garvid.qa.when_answering import answer_when
from garvid.regions.input import RegionInput

STATEMENT = "object 1 is above object 2"
WHEN = WhenOptions(window=0.5, resolution=0.1)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("when-cache")


@pytest.fixture
def request_(two_object_clip, cache_dir) -> VideoRequest:
    video, mask = two_object_clip
    options = AnswerOptions(
        model=ModelOptions("tiny-random", dtype="fp32", device="cpu"),
        tracking=TrackingOptions("tiny-random", cache_dir=cache_dir),
        keyframes=KeyframeOptions(frames=3),
    )
    return VideoRequest(video=video, regions=RegionInput(masks=(mask,)), question=STATEMENT, options=options)


def middle_threshold(request: VideoRequest) -> float:
    """A threshold between the coarse windows' scores, so the scan has boundaries to refine."""
    scores = sorted(w.score for w in answer_when(replace(request, when=WHEN)).scan if w.end - w.start >= WHEN.window - 1e-6)
    return (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2


@pytest.mark.slow
def test_a_window_scores_the_yes_no_probability_of_its_prompt(request_, monkeypatch):
    prompts, texts = [], []
    logits = GARModel.answer_logits
    tokens = TemporalPromptBuilder.tokens
    monkeypatch.setattr(GARModel, "answer_logits", lambda self, embeds: prompts.extend(embeds) or logits(self, embeds))
    monkeypatch.setattr(TemporalPromptBuilder, "tokens", lambda self, *a: texts.append(tokens(self, *a).text) or tokens(self, *a))
    context = AnswerContext()
    result = answer_when(replace(request_, when=WHEN), context)
    scored = [w for w in result.scan if w.score is not None]
    assert len(prompts) == len(scored) > 0
    tokenizer = context.files.tokenizer
    yes, no = tokenizer.convert_tokens_to_ids(["y", "Y"]), tokenizer.convert_tokens_to_ids(["n", "N"])  # the tiny vocabulary spells bytes
    by_hand = []
    for embeds in prompts:
        probabilities = torch.softmax(context.model.logits(embeds)[0, -1].double(), -1)
        by_hand.append(float(probabilities[yes].sum() / (probabilities[yes].sum() + probabilities[no].sum())))
    # the scan scores windows in rounds, so the order is by round; compare as sets of values
    assert sorted(by_hand) == pytest.approx(sorted(w.score for w in scored), abs=1e-5)
    question = "Is this true in these frames: <Prompt0> is above <Prompt1> Answer yes or no."
    assert result.request["question"] == question and result.request["protocol"]["yes_no"].startswith("Is this true")
    assert texts and all(text.endswith(question + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n") for text in texts[-1:])


@pytest.mark.slow
def test_each_keyframe_is_encoded_once_and_batch_sizes_agree(request_, monkeypatch):
    threshold = middle_threshold(request_)
    when = replace(WHEN, threshold=threshold)
    tiles: list[int] = []
    encode = GARModel.encode_images
    monkeypatch.setattr(GARModel, "encode_images", lambda self, p, m, *a: tiles.append(p.shape[0]) or encode(self, p, m, *a))
    one = answer_when(replace(request_, when=when))
    keyframes = {f for w in one.scan for f in w.keyframes}
    assert sum(tiles) == len(keyframes)  # single-tile keyframes: one tile each, each encoded once
    assert len(tiles) <= 1 + 3  # one vision-tower call per round: the coarse scan, then each of log2(0.5 / 0.1) halvings
    assert one.intervals and any(i.opens or i.closes for i in one.intervals)  # something was refined
    refined = [w for w in one.scan if w.end - w.start < WHEN.window - 1e-6]
    assert refined
    for per_pass in (2, 5):
        other = answer_when(replace(request_, when=when), prompts_per_pass=per_pass)
        assert [(i.start, i.end) for i in other.intervals] == [(i.start, i.end) for i in one.intervals]
        assert [w.score for w in other.scan] == pytest.approx([w.score for w in one.scan], abs=1e-5)


def test_windows_where_an_object_is_not_visible_are_not_scored(request_, tmp_path, two_object_tracks):
    tracks_file = tmp_path / "tracks.json"
    tracks_file.write_text(json.dumps(two_object_tracks(6).to_json()))  # object 2 leaves after frame 6 (0.7 s)
    result = answer_when(replace(request_, regions=RegionInput(), tracks=tracks_file, when=WHEN))
    states = {(w.start, w.end): w.state for w in result.scan}
    assert states[(1.0, 1.5)] == "not visible" and states[(0.5, 1.0)] == "scored"
    assert all(i.end <= 1.0 for i in result.intervals)  # it cannot hold where object 2 is gone
    window = next(w for w in result.to_json()["curve"] if w["state"] == "not visible")
    assert window["score"] is None and window["keyframes"] == []


def test_bad_input_is_refused_before_any_model_loads(request_, monkeypatch):
    monkeypatch.setattr("garvid.gar.loading.load_gar", lambda *a, **k: pytest.fail("GAR loaded"))
    monkeypatch.setattr("garvid.tracking.backends.load_tracker", lambda *a, **k: pytest.fail("a tracker loaded"), raising=False)
    with pytest.raises(GarvidError, match="statement is empty"):
        answer_when(replace(request_, question="  ", when=WHEN))
    with pytest.raises(GarvidError, match="names no tracked object"):
        answer_when(replace(request_, question="something is red", when=WHEN))
    with pytest.raises(OptionError, match="longer than the analysed span"):
        answer_when(replace(request_, when=WhenOptions(window=5.0)))
    with pytest.raises(OptionError) as error:
        WhenOptions(threshold=1.0)
    assert error.value.field == "threshold"
    with pytest.raises(OptionError) as error:
        WhenOptions(window=1.0, resolution=2.0)
    assert error.value.field == "resolution"


@pytest.mark.slow
def test_a_session_scores_a_second_statement_without_the_vision_tower(request_, monkeypatch):
    from garvid.qa.video_session import VideoSession

    with VideoSession(request_) as session:
        first = session.when(STATEMENT, WHEN)
        calls: list[int] = []
        encode = GARModel.encode_images
        monkeypatch.setattr(GARModel, "encode_images", lambda self, *a: calls.append(1) or encode(self, *a))
        second = session.when("object 2 is below object 1", WHEN)
    assert calls == []  # the same objects on the same keyframes: every encoding reused
    assert [w.keyframes for w in second.scan] == [w.keyframes for w in first.scan]
    assert [(i.start, i.end) for i in first.intervals] == [(i.start, i.end) for i in answer_when(replace(request_, when=WHEN)).intervals]
