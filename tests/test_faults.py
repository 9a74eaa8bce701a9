"""Faults inside the pipeline: a stage that raises ends its turn with a message and the next
turn works; a stage thread that dies is noticed by the supervisor, which stops the app.

The engines are the real models; a fault is injected by a thin wrapper that makes one call
raise and passes every other call to the real engine."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import soundfile

from conftest import normalise
from voice.capture import FileSource, read_audio
from voice.metrics import TurnMetrics
from voice.pipeline import Pipeline
from voice.playback import WavSink

Q1, Q2 = "What is the capital of France?", "What color is the sky?"


class Fault(RuntimeError):
    pass


class Fatal(BaseException):
    """Not an Exception: what a stage cannot catch around an item, so its thread dies."""


class FailFirst:
    """A real engine (or sink) whose first call of `method` raises `error`; everything else passes."""

    def __init__(self, inner, method: str, error: BaseException, after_items: int = 0) -> None:
        self.inner, self.method, self.error, self.after_items = inner, method, error, after_items
        self.fired = threading.Event()

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if name != self.method or self.fired.is_set():
            return attr
        if self.after_items == 0:  # a plain call
            def failing(*args, **kwargs):
                self.fired.set()
                raise self.error
            return failing

        def failing_stream(*args, **kwargs):  # a generator that fails part way
            for i, item in enumerate(attr(*args, **kwargs)):
                if i == self.after_items:
                    self.fired.set()
                    raise self.error
                yield item
        return failing_stream


@pytest.fixture(scope="module")
def two_questions(synth_question, tmp_path_factory):
    a, b = read_audio(synth_question(Q1)), read_audio(synth_question(Q2))
    path = tmp_path_factory.mktemp("faults") / "two.wav"
    soundfile.write(str(path), np.concatenate([a, np.zeros(16000, np.int16), b]), 16000)
    return path


def run(path, engines, config, sink, tmp_path):
    metrics, events = TurnMetrics(), []
    source = FileSource(path, config.audio.frame_ms, realtime=False, tail_s=1.0)
    pipeline = Pipeline(config, engines, source, sink, half_duplex=False)
    pipeline.bus.subscribe(metrics)
    pipeline.bus.subscribe(events.append)
    pipeline.run()
    return pipeline, metrics.turns, events


@pytest.mark.parametrize("stage", ["stt", "llm", "tts", "playback"])
def test_a_stage_that_raises_ends_the_turn_and_the_next_turn_works(stage, engines, config, two_questions, tmp_path):
    sink = WavSink(tmp_path / "reply.wav", engines.synthesizer.sample_rate)
    error = Fault(f"injected {stage} fault")
    if stage == "stt":
        engines = dataclasses.replace(engines, transcriber=FailFirst(engines.transcriber, "transcribe", error))
    elif stage == "llm":
        engines = dataclasses.replace(engines, chat=FailFirst(engines.chat, "stream", error, after_items=2))
    elif stage == "tts":
        engines = dataclasses.replace(engines, synthesizer=FailFirst(engines.synthesizer, "synthesize", error))
    else:
        sink = FailFirst(sink, "write", error)
    pipeline, turns, events = run(two_questions, engines, config, sink, tmp_path)

    assert not pipeline.stop(), "every stage stopped"
    assert pipeline.supervisor.failure is None
    # every turn is closed: a reply or a reason it was dropped; none is left open (turn ids
    # taken by speculation at a pause inside a question, and taken back, are no turns)
    assert len(turns) == 2, turns
    first, second = turns
    errors = [e for e in events if e.kind == "error"]
    assert errors and errors[0].turn_id == first["turn"] and f"injected {stage} fault" in errors[0].text
    assert "\n" not in errors[0].text, "a one-line message"
    assert "reply" in first or "transcription failed" in first.get("dropped", ""), first
    assert "errors" not in second and second["reply"].strip(), second
    assert {"sky"} <= set(normalise(second["transcript"]).split()), second


def test_a_dead_stage_stops_the_app_with_a_message(engines, config, two_questions, tmp_path):
    engines = dataclasses.replace(engines, transcriber=FailFirst(engines.transcriber, "transcribe", Fatal("boom")))
    sink = WavSink(tmp_path / "reply.wav", engines.synthesizer.sample_rate)
    finished = threading.Event()
    result = {}

    def go():
        result["run"] = run(two_questions, engines, config, sink, tmp_path)
        finished.set()

    threading.Thread(target=go, daemon=True).start()
    assert finished.wait(120), "the pipeline hung after a stage died"
    pipeline, turns, events = result["run"]
    assert pipeline.supervisor.failure and "stt stage died" in pipeline.supervisor.failure
    assert any(e.kind == "error" and "stt stage died" in e.text for e in events)
    assert not pipeline.stop(), "the other stages stopped"
