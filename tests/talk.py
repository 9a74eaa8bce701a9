"""Talking to the whole pipeline in tests: phrases spoken with Piper, replayed from a file."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from voice.capture import FileSource, read_audio
from voice.console import ConsolePrinter
from voice.frames import Event
from voice.metrics import TurnMetrics
from voice.pipeline import Pipeline
from voice.playback import WavSink


def spoken(synth_question, path: Path, *phrases: str, gap_s: float = 1.0) -> Path:
    """One 16 kHz WAV of the phrases, each followed by `gap_s` of silence."""
    parts = []
    for phrase in phrases:
        parts += [read_audio(synth_question(phrase)), np.zeros(int(gap_s * 16000), np.int16)]
    soundfile.write(str(path), np.concatenate(parts), 16000)
    return path


def voice_of(path: Path) -> np.ndarray:
    """The spoken part of a Piper WAV, at 16 kHz, without the silence around it."""
    pcm = read_audio(path)
    loud = np.flatnonzero(np.abs(pcm) > 100)
    return pcm[loud[0]:loud[-1] + 1]


@dataclass
class Run:
    pipeline: Pipeline
    turns: list[dict]  # TurnMetrics records
    events: list[Event]
    lines: list[str]  # what the console printed
    reply_wav: Path
    skill_turns: dict[str, list[dict]] = field(default_factory=dict)  # skill -> its turn records

    def first(self, kind: str, turn_id: int) -> Event:
        return next(e for e in self.events if e.kind == kind and e.turn_id == turn_id)


def talk(path: Path, engines, config, out_dir: Path, realtime: bool = False, tail_s: float = 1.0,
         pace: bool = False, half_duplex: bool = False, **pipeline_args) -> Run:
    """Replay `path` through a pipeline (by default not half-duplex) until every reply has played."""
    metrics, out, events = TurnMetrics(), io.StringIO(), []
    source = FileSource(path, config.audio.frame_ms, realtime=realtime, tail_s=tail_s)
    sink = WavSink(out_dir / "reply.wav", engines.synthesizer.sample_rate, pace=pace)
    pipeline = Pipeline(config, engines, source, sink, half_duplex=half_duplex, **pipeline_args)
    for subscriber in (metrics, ConsolePrinter(out), events.append):
        pipeline.bus.subscribe(subscriber)
    pipeline.run()
    assert not pipeline.stop(), "every stage stopped"
    run = Run(pipeline, metrics.turns, events, out.getvalue().splitlines(), out_dir / "reply.wav")
    for turn in run.turns:
        run.skill_turns.setdefault(turn.get("skill"), []).append(turn)
    return run
