"""SRT and WebVTT output, read back by independent parsers (srt, webvtt-py)."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import srt
import webvtt

from garvid.output.subtitles import Cue, render_subtitles

CUES = [Cue(0.0, 2.5, "first"), Cue(2.5, 5.0, "second\nline two"), Cue(5.0, 7.5, "ünïcødé ✓"), Cue(7.5, 3723.4567, "last")]


def _vtt(text: str) -> list:
    return list(webvtt.from_buffer(io.StringIO(text)))


def test_srt_round_trip_times_and_text():
    parsed = list(srt.parse(render_subtitles(CUES, "srt")))
    assert [p.index for p in parsed] == [1, 2, 3, 4]
    assert [(p.start, p.end) for p in parsed][:3] == [
        (timedelta(0), timedelta(seconds=2.5)),
        (timedelta(seconds=2.5), timedelta(seconds=5)),
        (timedelta(seconds=5), timedelta(seconds=7.5)),
    ]
    assert parsed[3].end == timedelta(hours=1, minutes=2, seconds=3, milliseconds=457)
    assert [p.content for p in parsed] == ["first", "second\nline two", "ünïcødé ✓", "last"]


def test_vtt_round_trip_times_and_text():
    text = render_subtitles(CUES, "vtt")
    assert text.startswith("WEBVTT")
    parsed = _vtt(text)
    assert [(c.start, c.end) for c in parsed] == [
        ("00:00:00.000", "00:00:02.500"),
        ("00:00:02.500", "00:00:05.000"),
        ("00:00:05.000", "00:00:07.500"),
        ("00:00:07.500", "01:02:03.457"),
    ]
    assert [c.text for c in parsed] == ["first", "second\nline two", "ünïcødé ✓", "last"]


def test_model_text_cannot_break_the_files():
    hostile = Cue(0.0, 1.0, "a <b> & {c}\n\n\nd --> e")
    [srt_cue] = list(srt.parse(render_subtitles([hostile], "srt")))
    assert srt_cue.content == "a <b> & {c}\nd -> e"  # blank lines would end the cue early
    [vtt_cue] = _vtt(render_subtitles([hostile], "vtt"))
    assert vtt_cue.raw_text == "a &lt;b&gt; &amp; {c}\nd -&gt; e"  # shown as text, not markup


def test_empty_list_is_a_valid_empty_file():
    assert list(srt.parse(render_subtitles([], "srt"))) == []
    assert _vtt(render_subtitles([], "vtt")) == []


@pytest.mark.parametrize("cue", [Cue(2.0, 2.0, "x"), Cue(-1.0, 1.0, "x"), Cue(0.0, 1.0, " \n ")])
def test_invalid_cues_are_refused(cue):
    with pytest.raises(ValueError):
        render_subtitles([cue], "srt")
