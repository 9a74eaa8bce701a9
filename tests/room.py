"""A simulated room, the hardware edge this machine lacks: the assistant's speaker is heard by
its microphone, delayed, attenuated and with a little reverberation, on top of a user who
speaks. It is both the pipeline's AudioSink (paced like a sound card) and its AudioSource
(16 kHz frames at real-time pace)."""

from __future__ import annotations

import threading
import time

import numpy as np
import soxr

from voice.frames import AudioFrame

RATE = 16000


class Room:
    def __init__(self, user: np.ndarray, sink_rate: int = 22050, echo_gain_db: float = -6.0,
                 echo_delay_ms: float = 40.0, tail_s: float = 8.0, frame_ms: int = 20, seed: int = 0) -> None:
        self.sample_rate = sink_rate  # as a sink
        self.frame = RATE * frame_ms // 1000
        n = len(user) + int(tail_s * RATE)
        self.user = np.zeros(n, np.float32)
        self.user[:len(user)] = user.astype(np.float32) / 32768.0
        self.played = np.zeros(n + RATE * 60, np.float32)  # what the speaker played, on the room's clock
        self.delay = int(echo_delay_ms * RATE / 1000)
        rng = np.random.default_rng(seed)
        t = np.arange(int(0.08 * RATE)) / RATE  # 80 ms of exponentially decaying reverberation
        ir = rng.standard_normal(len(t)) * np.exp(-t / 0.02) * 0.3
        ir[0] = 1.0
        self.ir = (ir / np.sqrt((ir ** 2).sum())) * 10 ** (echo_gain_db / 20)
        self._resampler = soxr.ResampleStream(sink_rate, RATE, 1, dtype="float32")
        self._t0: float | None = None
        self._written = 0  # samples of `played` the speaker has reached (16 kHz)
        self._lock = threading.Lock()
        self.mic = np.zeros(n, np.float32)  # what the microphone heard, for the test to inspect

    # --- the room's clock: starts with the first microphone frame ---
    def _now_index(self) -> int:
        return int((time.monotonic() - self._t0) * RATE) if self._t0 is not None else 0

    # --- AudioSink ---
    def write(self, block: np.ndarray) -> bool:
        pcm = self._resampler.resample_chunk(block.astype(np.float32))
        with self._lock:
            start = max(self._written, self._now_index())
            end = min(start + len(pcm), len(self.played))
            self.played[start:end] = pcm[:end - start]
            self._written = end
        due = self._t0 + self._written / RATE if self._t0 is not None else time.monotonic()
        time.sleep(max(0.0, due - time.monotonic() - self.latency))  # keep some buffered, like a sound card
        return True

    latency = 0.04  # seconds write() keeps buffered

    def discard(self) -> None:
        with self._lock:  # what was buffered and not yet heard is dropped
            now = self._now_index()
            self.played[now:self._written] = 0.0
            self._written = now

    def close(self) -> None:
        pass

    # --- AudioSource ---
    def frames(self, stop: threading.Event):
        self._t0 = time.monotonic()
        n, k = self.frame, len(self.ir)
        for i in range(0, len(self.user) - n + 1, n):
            if stop.is_set():
                return
            due = self._t0 + (i + n) / RATE
            time.sleep(max(0.0, due - time.monotonic()))
            lo = i - self.delay - k + 1
            with self._lock:
                src = self.played[max(0, lo):max(0, i + n - self.delay)]
            src = np.concatenate([np.zeros(max(0, -lo), np.float32), src])[: n + k - 1]
            src = np.pad(src, (0, n + k - 1 - len(src)))
            echo = np.convolve(src, self.ir, mode="valid")[:n]
            self.mic[i:i + n] = self.user[i:i + n] + echo
            # stamped on the room's clock, as a sound card stamps its frames: when this thread runs
            # late on a busy machine, the frame was still captured at its time
            yield AudioFrame((np.clip(self.mic[i:i + n], -1, 1) * 32767).astype(np.int16), RATE, due)

    def say(self, pcm: np.ndarray, after_s: float) -> None:
        """The user starts speaking `after_s` from now (e.g. over the assistant's reply)."""
        at = self._now_index() + int(after_s * RATE)
        end = min(at + len(pcm), len(self.user))
        self.user[at:end] += pcm[:end - at].astype(np.float32) / 32768.0
