"""A turn that reads as finished ends before the end-of-turn window has run out; one that trails
off waits for it; and speaking on within the window still takes the early end back. Piper's
spoken questions through the whole pipeline, in real time, with the real models."""

import dataclasses

import numpy as np
import pytest
import soundfile

from conftest import normalise
from talk import talk, voice_of
from voice.turn_end import reads_finished

# a long window, so that Whisper has long finished when the early end is due, even on a busy machine
LONG_WINDOW_MS = 1000


@pytest.mark.parametrize("text,finished", [
    ("What is the capital of France?", True),
    ("Set a timer for five minutes.", True),
    ("What are you thinking of?", True),  # a question may end on a preposition
    ("Stop!", True),
    ("Tell me about the.", False),  # Whisper's full stop after a word no sentence ends on
    ("I need to go to.", False),
    ("What is the capital of", False),
    ("I was thinking about...", False),
    ("And then,", False),
    ("Um.", False),
    ("Oh.", False),  # the start of "Oh, what about ...?"
    ("Oh, I see.", True),
    ("", False),
])
def test_what_reads_as_finished(text, finished):
    assert reads_finished(text) == finished


def long_window(config):
    return dataclasses.replace(config, vad=dataclasses.replace(config.vad, end_silence_ms=LONG_WINDOW_MS))


def said_with_pause(synth_question, path, first: str, pause_s: float, second: str):
    silence = np.zeros(int(0.5 * 16000), np.int16)
    pause = np.zeros(int(pause_s * 16000), np.int16)
    pcm = np.concatenate([silence, voice_of(synth_question(first)), pause, voice_of(synth_question(second)), silence])
    soundfile.write(str(path), pcm, 16000)
    return path


def decided(run) -> list:
    return [e for e in run.events if e.kind == "turn_decided"]


def answered(run) -> list[dict]:
    return [t for t in run.turns if t.get("reply")]


def you_lines(run) -> list[str]:
    """What the terminal showed of the user."""
    return [line for line in run.lines if line.startswith("you:")]


def test_a_finished_question_is_answered_before_the_window_runs_out(engines, config, synth_question, tmp_path):
    run = talk(synth_question("What is the largest ocean?"), engines, long_window(config), tmp_path, realtime=True)
    [decision] = decided(run)
    assert config.vad.early_end_ms <= decision.data["early_ms"] < LONG_WINDOW_MS
    [turn] = answered(run)
    assert {"largest", "ocean"} <= set(normalise(turn["transcript"]).split())
    assert turn["end_of_turn"] - turn["speech_end"] < LONG_WINDOW_MS / 1000
    assert you_lines(run) == [f"you: {turn['transcript']}"]
    assert [t.user for t in run.pipeline.conversation.turns] == [turn["transcript"]]


def test_half_duplex_a_turn_ended_early_is_final_once_the_assistant_speaks(engines, config, synth_question,
                                                                          tmp_path):
    """Half-duplex, the microphone closes while the assistant speaks: nobody can speak on, so
    the turn is final then, not when the window would have run out."""
    run = talk(synth_question("What is the largest ocean?"), engines, long_window(config), tmp_path,
               realtime=True, pace=True, half_duplex=True)
    [decision] = decided(run)
    assert "early_ms" in decision.data
    [turn] = answered(run)
    final = run.first("turn_final", turn["turn"])
    assert final.t < turn["playback_end"]
    assert you_lines(run) == [f"you: {turn['transcript']}"]


def test_words_that_trail_off_wait_for_the_whole_window(engines, config, synth_question, tmp_path):
    path = said_with_pause(synth_question, tmp_path / "q.wav", "Tell me about the", 0.6, "history of the moon.")
    run = talk(path, engines, long_window(config), tmp_path, realtime=True)
    [decision] = decided(run)  # no early end at the pause after "the"
    [turn] = answered(run)
    assert decision.turn_id == turn["turn"]
    assert {"about", "moon"} <= set(normalise(turn["transcript"]).split())


def test_speaking_on_after_an_early_end_takes_it_back(engines, config, synth_question, tmp_path):
    """"What is the capital of France?" reads as finished, so the turn ends at the pause; the
    user goes on within the window, so it is taken back and the whole is one turn."""
    path = said_with_pause(synth_question, tmp_path / "q.wav", "What is the capital of France?", 0.7,
                           "And of Germany?")
    run = talk(path, engines, long_window(config), tmp_path, realtime=True, pace=True)
    first, last = decided(run)
    assert "early_ms" in first.data
    assert any(e.kind == "turn_retracted" and e.turn_id == first.turn_id for e in run.events)
    # its reply, if it had begun, stopped there
    assert all(e.data.get("interrupted") for e in run.events if e.kind == "reply_done" and e.turn_id == first.turn_id)
    [turn] = answered(run)
    assert turn["turn"] == last.turn_id
    assert {"france", "germany"} <= set(normalise(turn["transcript"]).split())
    # the history holds the whole question once, with the reply to it
    assert [t.user for t in run.pipeline.conversation.turns] == [turn["transcript"]]
    # the terminal shows the first part only if the assistant had begun to answer it
    begun = any(e.kind == "playback_start" and e.turn_id == first.turn_id for e in run.events)
    you = you_lines(run)
    assert you[-1] == f"you: {turn['transcript']}" and len(you) == 1 + begun, run.lines
