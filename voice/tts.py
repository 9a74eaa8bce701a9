"""Text to speech: Piper behind a Synthesizer protocol, and the TTS stage."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np

from .config import TtsConfig
from .frames import ReplyEnd, ReplySentence, SpeechAudio
from .models import ModelError, piper_voice_file
from .stage import EventBus, Stage

log = logging.getLogger(__name__)


class Synthesizer(Protocol):
    sample_rate: int

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        """float32 mono audio at `sample_rate`, one array per sentence of `text`."""
        ...


class PiperSynthesizer:
    def __init__(self, config: TtsConfig) -> None:
        path = piper_voice_file(config.voice)
        try:
            self.voice = _load_voice(path)
        except Exception as e:  # onnxruntime raises its own exception types
            raise ModelError(f"cannot load the Piper voice at {path}: {e}") from e
        self.sample_rate = self.voice.config.sample_rate
        from piper import SynthesisConfig

        self.syn_config = SynthesisConfig(length_scale=config.length_scale, volume=config.volume)
        log.info("tts: Piper voice %s (%d Hz)", path, self.sample_rate)

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        for chunk in self.voice.synthesize(text, self.syn_config):
            yield chunk.audio_float_array


def _load_voice(path: Path):
    """PiperVoice.load, but with onnxruntime's worker threads sleeping between runs: by default
    they spin after each sentence, and on two cores that takes the CPU from the LLM writing the
    next one (measured: first-sentence synthesis 67-85 ms instead of 88-145 ms while it writes)."""
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    config = PiperConfig.from_dict(json.loads(Path(f"{path}.json").read_text(encoding="utf-8")))
    session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    return PiperVoice(session=session, config=config)


class TtsStage(Stage):
    """ReplySentence in, SpeechAudio out; ReplyEnd passes through in order."""

    def __init__(self, synthesizer: Synthesizer, inbox: queue.Queue, outbox: queue.Queue,
                 stop: threading.Event, bus: EventBus, is_cancelled=lambda turn_id: False) -> None:
        super().__init__("tts", inbox, outbox, stop, bus)
        self.synthesizer = synthesizer
        self.is_cancelled = is_cancelled

    def handle(self, item: ReplySentence | ReplyEnd) -> None:
        if isinstance(item, ReplyEnd):
            self.emit(item)
            return
        if self.is_cancelled(item.turn_id):
            return
        for pcm in self.synthesizer.synthesize(item.text):
            if self.is_cancelled(item.turn_id) or self.stop.is_set():
                return
            now = time.monotonic()
            if item.index == 0:
                self.bus.emit("tts_audio", item.turn_id, item.text, t=now)
            self.emit(SpeechAudio(item.turn_id, item.index, item.text, pcm, self.synthesizer.sample_rate, now))
