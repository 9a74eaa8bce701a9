"""Speech to text: faster-whisper behind a small Transcriber protocol, and the STT stage."""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .config import SttConfig
from .frames import Transcript, Utterance
from .models import ModelError, whisper_model_dir
from .stage import EventBus, Stage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recognition:
    text: str
    no_speech_prob: float  # Whisper's probability that the audio held no speech
    avg_logprob: float  # mean token log-probability of the text


class Transcriber(Protocol):
    def transcribe(self, audio: np.ndarray) -> Recognition:
        """16 kHz mono float32 audio in [-1, 1] to text."""
        ...


class WhisperTranscriber:
    """faster-whisper (CTranslate2) on the CPU. The lazy segment generator is consumed here."""

    def __init__(self, config: SttConfig) -> None:
        from faster_whisper import WhisperModel

        path = whisper_model_dir(config.model)
        try:
            self.model = WhisperModel(str(path), device="cpu", compute_type=config.compute_type,
                                      cpu_threads=config.threads)
        except (RuntimeError, ValueError, OSError) as e:
            raise ModelError(f"cannot load the Whisper model at {path}: {e}") from e
        self.config = config
        log.info("stt: Whisper from %s", path)

    def transcribe(self, audio: np.ndarray) -> Recognition:
        segments, _info = self.model.transcribe(
            audio, language=self.config.language, beam_size=self.config.beam_size,
            without_timestamps=True, condition_on_previous_text=False, vad_filter=False,
            temperature=0.0)
        segments = list(segments)
        if not segments:
            return Recognition("", 1.0, -10.0)
        text = " ".join(s.text.strip() for s in segments).strip()
        no_speech = min(s.no_speech_prob for s in segments)
        logprob = float(np.mean([s.avg_logprob for s in segments]))
        return Recognition(text, no_speech, logprob)


def is_hallucination(r: Recognition, config: SttConfig) -> bool:
    """Whisper's usual answer to noise: an improbable text where it also thinks nobody spoke."""
    if not r.text.strip(" .,!?-"):
        return True
    return r.no_speech_prob > config.no_speech_threshold and r.avg_logprob < config.logprob_threshold


class SttStage(Stage):
    """Utterance in, Transcript out. Empty or hallucinated transcripts end the turn with a reason."""

    def __init__(self, config: SttConfig, transcriber: Transcriber, inbox: queue.Queue, outbox: queue.Queue,
                 stop: threading.Event, bus: EventBus) -> None:
        super().__init__("stt", inbox, outbox, stop, bus)
        self.config, self.transcriber = config, transcriber

    def handle(self, utt: Utterance) -> None:
        audio = utt.pcm.astype(np.float32) / 32768.0
        result = self.transcriber.transcribe(audio)
        now = time.monotonic()
        if is_hallucination(result, self.config):
            log.info("turn %d dropped: no speech recognised (%r, no_speech=%.2f, logprob=%.2f)",
                     utt.turn_id, result.text, result.no_speech_prob, result.avg_logprob)
            self.bus.emit("turn_dropped", utt.turn_id, "no speech recognised", t=now)
            return
        self.bus.emit("transcript", utt.turn_id, result.text, t=now)
        self.emit(Transcript(utt.turn_id, result.text, now))
