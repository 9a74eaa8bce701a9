"""Whisper on recorded human speech: word error rate after normalising case and punctuation."""

import numpy as np
import pytest

from conftest import wer
from voice.capture import read_audio


def test_whisper_on_the_shared_clips(engines, shared_clips):
    errors = []
    for clip in shared_clips:
        audio = read_audio(clip["path"]).astype(np.float32) / 32768.0
        text = engines.transcriber.transcribe(audio).text
        errors.append(wer(clip["transcript"], text))
        assert errors[-1] <= 0.25, f"{clip['file']}: {text!r}"
    assert np.mean(errors) <= 0.12


def test_silence_is_not_a_transcript(engines, config):
    from voice.stt import is_hallucination

    result = engines.transcriber.transcribe(np.zeros(16000, np.float32))
    assert is_hallucination(result, config.stt)
