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


def stt_over_reply(config, engines, said: str, pcm: np.ndarray, over_reply: bool = True) -> list:
    """The STT stage after the assistant said `said`, on `pcm` (16 kHz int16) as a turn begun over
    that reply or not; returns the bus events."""
    import queue
    import threading

    from voice.frames import Utterance
    from voice.own_voice import OwnWords
    from voice.stage import EventBus
    from voice.stt import SttStage

    bus, events, own = EventBus(), [], OwnWords()
    bus.subscribe(events.append)
    bus.subscribe(own)
    bus.emit("sentence", 1, said, index=0, t=0.0)
    bus.emit("playback_start", 1, t=0.0)
    stage = SttStage(config.stt, engines.transcriber, queue.Queue(), queue.Queue(), threading.Event(), bus,
                     own_words=own)
    stage.handle(Utterance(2, pcm, 16000, 0.5, len(pcm) / 16000, len(pcm) / 16000, over_reply=over_reply))
    return [e for e in events if e.turn_id == 2]


def test_the_assistants_own_words_over_its_reply_are_not_a_turn(config, engines):
    """The canceller let a phrase of the reply through: Whisper hears the assistant's own words, and
    that turn is dropped. The same words from a turn begun while it was quiet are the user's."""
    import soxr

    from conftest import steady_speech

    said = "The largest ocean is the Pacific Ocean, which covers about a third of the planet."
    tts = engines.synthesizer
    leak = steady_speech(tts, "which covers about a third of the planet")
    pcm = (soxr.resample(leak, tts.sample_rate, 16000) * 0.5 * 32767).astype(np.int16)
    [dropped] = stt_over_reply(config, engines, said, pcm)
    assert dropped.kind == "turn_dropped" and dropped.text == "its own voice", dropped
    assert [e.kind for e in stt_over_reply(config, engines, said, pcm, over_reply=False)] == ["transcript"]


def test_a_user_talking_over_the_reply_is_heard(config, engines, shared_clips):
    clip = next(c for c in shared_clips if c["file"] == "LJ001-0002.wav")
    said = "Printing is the art of making books, which were first written by hand."
    [heard] = stt_over_reply(config, engines, said, read_audio(clip["path"]))
    assert heard.kind == "transcript" and wer(clip["transcript"], heard.text) <= 0.25, heard
