"""The TTS stage: a reply's first piece starts at its first sound."""

import queue
import threading

import numpy as np
import pytest

from conftest import steady_speech
from voice.frames import ReplySentence
from voice.stage import EventBus
from voice.piper_voice import PiperSynthesizer
from voice.tts import Sound, TtsStage


class SteadyPiper:
    """The bundled voice without its random noise (see steady_speech): the same samples every run."""

    def __init__(self, synthesizer: PiperSynthesizer) -> None:
        self.synthesizer, self.sample_rate = synthesizer, synthesizer.sample_rate

    def synthesize(self, text: str):
        yield Sound(steady_speech(self.synthesizer, text), 0.0, 1.0)


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
