"""Preset look-ups: which presets carry random weights, and what the user is told about them."""

from __future__ import annotations

from garvid.presets import default_preset, random_weights_warning


def test_random_presets_are_named_and_real_ones_are_not():
    assert "text is meaningless" in random_weights_warning("tiny-random")
    assert "masks are meaningless" in random_weights_warning("tiny-random", "trackers")
    assert "masks are meaningless" in random_weights_warning("sam2.1-tiny-random", "trackers")
    assert random_weights_warning(default_preset("models")) is None
    assert random_weights_warning(default_preset("trackers"), "trackers") is None
    assert random_weights_warning("/some/local/checkpoint") is None
