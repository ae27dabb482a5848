"""``VideoSession``: tracked once, GAR loaded once, follow-ups reuse encodings and the prompt
prefix's KV cache, and answer exactly as a fresh ``garvid ask`` does (fp32, tiny models)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from garvid.options import AnswerOptions, GenerationOptions, KeyframeOptions, ModelOptions, TrackingOptions
from garvid.qa.reporting import Reporter
from garvid.qa.video_request import VideoRequest
from garvid.qa.video_session import VideoSession
from garvid.qa.video_answering import answer_video
from garvid.regions.input import RegionInput

FIRST, FOLLOW_UP, OTHER = "what does object 2 do to object 1?", "where is object 1 relative to object 2?", "what is object 1?"


@pytest.fixture
def request_(two_object_clip, tmp_path) -> VideoRequest:
    video, mask = two_object_clip
    options = AnswerOptions(
        model=ModelOptions("tiny-random", dtype="fp32", device="cpu"),
        tracking=TrackingOptions("tiny-random", cache_dir=tmp_path / "cache"),
        keyframes=KeyframeOptions(frames=3),
        generation=GenerationOptions(max_new_tokens=6),
    )
    return VideoRequest(video=video, regions=RegionInput(masks=(mask,)), options=options)


class Interrupting(Reporter):
    """Raises KeyboardInterrupt at the first streamed token once armed (Ctrl-C mid-answer)."""

    armed = False

    def token(self, text: str) -> None:
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt


@pytest.mark.slow
def test_follow_ups_reuse_everything_and_answer_as_a_fresh_ask(request_, monkeypatch):
    reporter = Interrupting()
    with VideoSession(request_, reporter) as session:
        assert session.object_ids == [1, 2]
        first = session.ask(FIRST)
        calls: list[int] = []
        encode = type(session.model).encode_images
        monkeypatch.setattr(type(session.model), "encode_images", lambda self, *a: calls.append(1) or encode(self, *a))
        follow_up = session.ask(FOLLOW_UP)
        assert calls == []  # same objects, same keyframes: nothing re-encoded
        assert follow_up.keyframes == first.keyframes and follow_up.tracker["tracked_objects"] == []
        reporter.armed = True
        with pytest.raises(KeyboardInterrupt):
            session.ask(FOLLOW_UP)
        again = session.ask(FOLLOW_UP)  # the session survives a cancelled answer, its prefix cache intact
        other = session.ask(OTHER)  # another subset of the objects: encoded anew
        assert calls == [1]
    fresh = answer_video(replace(request_, question=FOLLOW_UP))
    assert fresh.tracker["cached"] is True  # the session's tracks, through the per-object cache
    assert fresh.keyframes == follow_up.keyframes
    assert follow_up.answers[0].token_ids and follow_up.answers[0].token_ids == fresh.answers[0].token_ids
    assert again.answers[0].token_ids == fresh.answers[0].token_ids
    assert other.answers[0].token_ids == answer_video(replace(request_, question=OTHER)).answers[0].token_ids


def test_the_session_loads_gar_with_the_requested_attention_kernel(request_):
    options = request_.options
    with VideoSession(replace(request_, options=replace(options, model=replace(options.model, attn="eager")))) as session:
        assert session.model.mllm.model.language_model.config._attn_implementation == "eager"
