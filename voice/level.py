"""The microphone level for a meter: the loudest frame of each ~50 ms, as a `level` event."""

from __future__ import annotations

import math

import numpy as np

from .stage import EventBus

FLOOR_DBFS = -90.0  # what digital silence reads as


def dbfs(pcm: np.ndarray) -> float:
    """RMS level of int16 samples in dB relative to full scale (0 = loudest)."""
    if len(pcm) == 0:
        return FLOOR_DBFS
    rms = math.sqrt(float(np.mean(np.square(pcm.astype(np.float32)))))
    return max(FLOOR_DBFS, 20.0 * math.log10(rms / 32768.0)) if rms > 0 else FLOOR_DBFS


class LevelMeter:
    """Fed every frame on the VAD thread; emits at most one `level` event per `interval_s`."""

    def __init__(self, bus: EventBus, interval_s: float = 0.05) -> None:
        self.bus, self.interval_s = bus, interval_s
        self._peak = FLOOR_DBFS
        self._last_t = float("-inf")

    def feed(self, pcm: np.ndarray, t: float) -> None:
        self._peak = max(self._peak, dbfs(pcm))
        if t - self._last_t >= self.interval_s:
            self.bus.emit("level", t=t, dbfs=round(self._peak, 1))
            self._peak, self._last_t = FLOOR_DBFS, t
