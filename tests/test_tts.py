"""Piper's session: the optimized graph is kept in the user's cache directory between launches."""

import logging
import queue
import threading

import numpy as np
import pytest

from conftest import steady_speech
from voice.frames import ReplySentence
from voice.stage import EventBus
from voice.tts import PiperSynthesizer, TtsStage


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


class SteadyPiper:
    """The bundled voice without its random noise (see steady_speech): the same samples every run."""

    def __init__(self, synthesizer: PiperSynthesizer) -> None:
        self.synthesizer, self.sample_rate = synthesizer, synthesizer.sample_rate

    def synthesize(self, text: str):
        yield steady_speech(self.synthesizer, text)


def first_over(pcm: np.ndarray, dbfs: float, rate: int) -> float:
    """ms to the first sample over `dbfs`."""
    return np.flatnonzero(np.abs(pcm) > 10 ** (dbfs / 20))[0] * 1000 / rate


def test_a_reply_starts_at_its_first_sound_not_at_pipers_silent_lead(engines):
    piper = SteadyPiper(engines.synthesizer)
    rate, outbox = piper.sample_rate, queue.Queue()
    stage = TtsStage(piper, queue.Queue(), outbox, threading.Event(), EventBus())
    texts = ["Water boils at 100 degrees.", "It is sunny today."]
    for index, text in enumerate(texts):
        stage.handle(ReplySentence(1, index, text, 0.0))
    first, second = outbox.get_nowait().pcm, outbox.get_nowait().pcm
    whole = steady_speech(engines.synthesizer, texts[0])
    cut = len(whole) - len(first)
    assert np.array_equal(first, whole[cut:])  # nothing but the lead is taken
    assert cut * 1000 / rate >= 20, cut
    assert round(first_over(first, -60, rate)) == 5  # LEAD_KEEP_MS
    # audible (the outside judge's -40 dBFS) that much sooner
    assert first_over(whole, -40, rate) - first_over(first, -40, rate) == pytest.approx(cut * 1000 / rate)
    assert np.array_equal(second, steady_speech(engines.synthesizer, texts[1]))  # a later piece keeps its lead
