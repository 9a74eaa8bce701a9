"""Echo cancellation: the assistant must not hear itself through the speakers.

WebRTC's audio processing module (from the `livekit` package) gets exactly the audio sent
to the speaker (`reference`, from the playback thread) and the microphone (the echo stage,
on its own thread), both in 10 ms frames at 16 kHz, and removes the speaker's echo from
the microphone. With it the microphone stays open while the assistant speaks, so the user
can interrupt it on plain laptop speakers; without it the pipeline is half-duplex.
"""

from __future__ import annotations

import logging
import queue
import threading

import numpy as np
import soxr

from .capture import to_int16
from .config import EchoConfig
from .frames import AudioFrame
from .stage import EventBus, Stage

log = logging.getLogger(__name__)

RATE = 16000
FRAME = RATE // 100  # the module works on 10 ms frames


class EchoCanceller:
    def __init__(self, config: EchoConfig, delay_ms: int) -> None:
        from livekit import rtc

        self._rtc = rtc
        self.apm = rtc.AudioProcessingModule(echo_cancellation=True, noise_suppression=config.noise_suppression,
                                             high_pass_filter=True)
        self.delay_ms = delay_ms
        self.apm.set_stream_delay_ms(delay_ms)
        self._lock = threading.Lock()  # the reverse and the capture side are called from two threads
        self._resamplers: dict[int, soxr.ResampleStream] = {}
        self._ref_pending = np.zeros(0, np.int16)
        log.info("echo cancellation on (stream delay %d ms, noise suppression %s)", delay_ms,
                 "on" if config.noise_suppression else "off")

    def reference(self, block: np.ndarray, sample_rate: int) -> None:
        """Audio as it goes to the speaker (float32 mono at `sample_rate`)."""
        if sample_rate != RATE:
            stream = self._resamplers.setdefault(sample_rate, soxr.ResampleStream(sample_rate, RATE, 1, dtype="float32"))
            block = stream.resample_chunk(block.astype(np.float32))
        pcm = np.concatenate([self._ref_pending, to_int16(block)])
        usable = len(pcm) // FRAME * FRAME
        self._ref_pending = pcm[usable:]
        with self._lock:
            for i in range(0, usable, FRAME):
                self.apm.process_reverse_stream(self._frame(pcm[i:i + FRAME]))

    def process(self, pcm: np.ndarray) -> np.ndarray:
        """Microphone audio (int16 at 16 kHz, a whole number of 10 ms frames) with the echo removed."""
        out = np.empty_like(pcm)
        with self._lock:
            for i in range(0, len(pcm) - FRAME + 1, FRAME):
                frame = self._frame(pcm[i:i + FRAME])
                self.apm.set_stream_delay_ms(self.delay_ms)  # the module wants it before each capture frame
                self.apm.process_stream(frame)
                out[i:i + FRAME] = np.frombuffer(frame.data, np.int16)
        return out

    def _frame(self, pcm: np.ndarray):
        return self._rtc.AudioFrame(bytearray(pcm.tobytes()), RATE, 1, FRAME)


class EchoStage(Stage):
    """AudioFrame in, the same frame with the assistant's echo removed out."""

    def __init__(self, canceller: EchoCanceller, inbox: queue.Queue, outbox: queue.Queue,
                 stop: threading.Event, bus: EventBus) -> None:
        super().__init__("echo", inbox, outbox, stop, bus)
        self.canceller = canceller

    def handle(self, frame: AudioFrame) -> None:
        self.emit(AudioFrame(self.canceller.process(frame.pcm), frame.sample_rate, frame.t))
