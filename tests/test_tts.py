"""Piper's session: the optimized graph is kept in the user's cache directory between launches."""

import logging

import numpy as np

from conftest import steady_speech
from voice.tts import PiperSynthesizer


def speak(synthesizer: PiperSynthesizer) -> np.ndarray:
    return steady_speech(synthesizer, "Hello there, how are you?")


def test_the_optimized_voice_graph_is_kept_and_read_back(config, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = PiperSynthesizer(config.tts)
    kept = list((tmp_path / "voice-assistant").iterdir())
    assert [p.suffix for p in kept] == [".onnx"], kept  # whole: no partial file left
    again = PiperSynthesizer(config.tts)
    assert np.array_equal(speak(first), speak(again))
    kept[0].write_bytes(b"not a graph")  # a damaged cache is read, found wanting and made again
    with caplog.at_level(logging.WARNING, logger="voice.tts"):
        third = PiperSynthesizer(config.tts)
    assert "cannot be read" in caplog.text
    assert np.array_equal(speak(first), speak(third))
    assert kept[0].stat().st_size > 1_000_000


def test_a_cache_directory_that_cannot_be_written_is_passed_by(config, tmp_path, monkeypatch, caplog):
    (tmp_path / "voice-assistant").write_text("a file where the directory should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="voice.tts"):
        synthesizer = PiperSynthesizer(config.tts)
    assert "cannot keep the optimized voice graph" in caplog.text
    assert len(speak(synthesizer)) > synthesizer.sample_rate  # and it speaks
