"""Shots in answers: the temporal prompt marks a keyframe from another shot than the one before
it (and nothing else changes), ask and when JSON carry shots and each object's presence, and
``--keyframes visible`` keeps to frames where an object is tracked and visible. Hand-made
two-shot tracks (absent observations in the shot no prompt reaches) given as ``--tracks``
files, answered by the tiny-random GAR."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from garvid.errors import GarvidError
from garvid.gar.loading import load_gar
from garvid.options import AnswerOptions, GenerationOptions, KeyframeOptions, ModelOptions, PromptOptions, TrackingOptions, WhenOptions
from garvid.qa.context import AnswerContext
from garvid.qa.planning import GarFiles, TemporalPromptBuilder
from garvid.qa.protocol import load_protocol
from garvid.qa.temporal_text import temporal_text
from garvid.qa.video_answering import answer_video
from garvid.qa.video_request import VideoRequest
from garvid.qa.when_answering import answer_when
from garvid.regions.input import RegionInput
from garvid.tracking.tracks import Tracks

MARK = "(a new shot starts)\n"
CUT = 8  # the two-object clip's 15 frames: shot 1 is frames 0-7, shot 2 frames 8-14
QUESTION = "what does object 2 do to object 1?"


@pytest.fixture(scope="module")
def builder() -> TemporalPromptBuilder:
    return TemporalPromptBuilder(GarFiles.read("tiny-random"), load_protocol(), PromptOptions(), (96, 64))


@pytest.fixture(scope="module")
def model():
    return load_gar("tiny-random", device="cpu")


def _text(builder: TemporalPromptBuilder, shots: list[int] | tuple[()] = ()) -> str:
    times = [0.5 * k for k in range(4)]
    layouts = builder.layout(times, [[0, 1], [1], [0, 1], [0]], [0, 1], shots)
    return temporal_text(builder.protocol.text, [0, 1], layouts, "what does <Prompt1> do?")


def test_a_keyframe_from_another_shot_is_marked_before_its_frame_line(builder):
    text = _text(builder, [0, 0, 1, 1])
    assert text.count(MARK) == 1
    before, after = text.split(MARK)
    assert "Frame 2 at 0.5s" in before and after.startswith("Frame 3 at 1.0s") and "Frame 3" not in before
    assert _text(builder, [0, 1, 0, 1]).count(MARK) == 3  # every change of shot, also back to an earlier one


def test_keyframes_within_one_shot_give_the_text_of_before_byte_for_byte(builder):
    plain = _text(builder)
    assert MARK not in plain and _text(builder, [2, 2, 2, 2]) == plain
    unmarked = replace(builder.protocol, mark_shots=False)
    other = TemporalPromptBuilder(builder.files, unmarked, builder.options, (96, 64))
    assert _text(other, [0, 0, 1, 1]) == plain  # a protocol that does not mark shots never does


def test_the_prompt_fit_counts_a_mark_before_every_keyframe_but_the_first(builder):
    plain = builder.worst_case_length(3, [0, 1], "where is <Prompt0>?", 9.5)
    marked = builder.worst_case_length(3, [0, 1], "where is <Prompt0>?", 9.5, cuts=True)
    assert marked > plain and (marked - plain) % 2 == 0  # two marks of the same length


def test_mark_shots_is_recorded_and_checked(tmp_path):
    assert load_protocol().to_json() == {"name": "temporal", "version": 1, "mark_shots": True}
    shipped = Path(load_protocol().source).read_text()
    older = tmp_path / "older.toml"  # written before shots: no mark_shots, no new_shot
    older.write_text(shipped.replace("mark_shots = true\n", "").replace('new_shot = "(a new shot starts)\\n"\n', ""))
    assert load_protocol(older).mark_shots is False and load_protocol(older).text.new_shot is None
    for old, new, needle in [
        ("mark_shots = true", 'mark_shots = "yes"', "'mark_shots' must be true or false"),
        ('new_shot = "(a new shot starts)\\n"', "", "no new_shot piece"),
        ('new_shot = "(a new shot starts)\\n"', 'new_shot = "cut at {time}\\n"', "new_shot must use"),
    ]:
        broken = tmp_path / "broken.toml"
        broken.write_text(shipped.replace(old, new))
        with pytest.raises(GarvidError, match=needle):
            load_protocol(broken)


@pytest.fixture
def tracks(two_object_tracks) -> Tracks:
    """Object 1 in both shots; object 2 only in shot 1 (absent in shot 2: no prompt reaches it)."""
    return two_object_tracks(CUT - 1, absent=True, cuts=[CUT])


def _request(clip, tmp_path: Path, tracks: Tracks, question: str | None = QUESTION, **keyframes) -> VideoRequest:
    path = tmp_path / "tracks.json"
    path.write_text(json.dumps(tracks.to_json()))
    options = AnswerOptions(
        model=ModelOptions("tiny-random", device="cpu"),
        tracking=TrackingOptions(use_cache=False),
        keyframes=KeyframeOptions(**{"frames": 2, **keyframes}),
        generation=GenerationOptions(max_new_tokens=2),
    )
    return VideoRequest(video=clip[0], regions=RegionInput(), tracks=path, question=question, options=options)


@pytest.fixture
def prompt_texts(monkeypatch) -> list[str]:
    """The text of every temporal prompt built."""
    texts: list[str] = []
    tokens = TemporalPromptBuilder.tokens

    def spy(self, *args):
        built = tokens(self, *args)
        texts.append(built.text)
        return built

    monkeypatch.setattr(TemporalPromptBuilder, "tokens", spy)
    return texts


def test_ask_across_a_cut_marks_it_and_reports_shots_and_presence(two_object_clip, tracks, tmp_path, model, prompt_texts):
    result = answer_video(_request(two_object_clip, tmp_path, tracks), AnswerContext(model=model))
    keyframes = result.answers[0].keyframes
    assert min(keyframes) < CUT <= max(keyframes)
    crossing = next(k for k in range(1, len(keyframes)) if keyframes[k] >= CUT)
    text = prompt_texts[-1]
    assert text.count(MARK) == 1 and text.index(f"Frame {crossing} at") < text.index(MARK) < text.index(f"Frame {crossing + 1} at")
    data = result.to_json()
    assert data["shots"] == tracks.shots.to_json() and [s["start_frame"] for s in data["shots"]] == [0, CUT]
    presence = {o["id"]: o["presence"] for o in data["objects"]}
    times = tracks.times
    assert presence[2] == [{"start": times[0], "end": times[CUT - 1], "first_frame": 0, "last_frame": CUT - 1}]
    assert [(p["first_frame"], p["last_frame"]) for p in presence[1]] == [(0, CUT - 1), (CUT, 14)]  # a cut ends a presence
    on_keyframes = {e["frame"]: e["visible"] for e in data["objects"][1]["keyframes"]}
    assert on_keyframes == {f: f < CUT for f in keyframes}  # absent observations are not visible
    assert data["protocol"]["mark_shots"] is True


def test_visible_keyframes_keep_to_frames_where_the_object_is_tracked_and_visible(two_object_clip, tracks, tmp_path, model):
    request = _request(two_object_clip, tmp_path, tracks, "what is object 2?", strategy="visible")
    keyframes = answer_video(request, AnswerContext(model=model)).answers[0].keyframes
    assert len(keyframes) == 2 and all(f < CUT for f in keyframes)  # object 2 is absent from shot 2


def test_one_shot_tracks_answer_as_tracks_without_shots(two_object_clip, two_object_tracks, tmp_path, model, prompt_texts):
    without = two_object_tracks(CUT - 1, absent=True)  # a tracks file written before shots existed
    one = two_object_tracks(CUT - 1, absent=True, cuts=[])
    first = answer_video(_request(two_object_clip, tmp_path, without), AnswerContext(model=model)).to_json()
    built = len(prompt_texts)  # the prompt-size fit's and the answer's
    second = answer_video(_request(two_object_clip, tmp_path, one), AnswerContext(model=model)).to_json()
    assert prompt_texts[:built] == prompt_texts[built:] and not any(MARK in text for text in prompt_texts)
    assert first["shots"] == second["shots"] == one.shots.to_json()  # the whole video as one shot
    assert first["objects"] == second["objects"] and first["answer"] == second["answer"]


def test_when_reports_shots_and_presence_and_marks_a_window_across_the_cut(two_object_clip, tracks, tmp_path, model, prompt_texts):
    request = replace(_request(two_object_clip, tmp_path, tracks, "object 1 is above object 2", frames=3), when=WhenOptions(window=0.5, resolution=0.5))
    result = answer_when(request, AnswerContext(model=model))
    data = result.to_json()
    assert data["shots"] == tracks.shots.to_json()
    assert [(o["id"], len(o["presence"])) for o in data["objects"]] == [(1, 2), (2, 1)]
    crossing = [w for w in result.scan if w.keyframes and min(w.keyframes) < CUT <= max(w.keyframes)]
    assert [(w.start, w.end) for w in crossing] == [(0.5, 1.0)]
    scored = [text for text in prompt_texts if "Frame 1 at 0.5s" in text]  # that window's prompt (the fit's have other times)
    assert len(scored) == 1 and scored[0].count(MARK) == 1
