"""Audio sources and the capture stage.

An AudioSource is an iterator of AudioFrames (16 kHz mono int16, `frame_ms` long) that
ends when its input ends. A microphone and a file are both sources, so a replay test runs
the very pipeline that live mode runs.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np
import soundfile
import soxr

from .frames import END, AudioFrame
from .stage import EventBus, put

log = logging.getLogger(__name__)


class AudioInputError(RuntimeError):
    """An input file or device cannot be used; the message says which and why."""


class AudioSource(Protocol):
    sample_rate: int

    def frames(self, stop: threading.Event) -> Iterator[AudioFrame]:
        """Frames until the input ends or `stop` is set."""
        ...

    def close(self) -> None: ...


def to_int16(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


def read_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Any file libsndfile reads (WAV, FLAC, OGG, ...; any rate and channel count) as mono int16."""
    path = Path(path)
    if not path.is_file():
        raise AudioInputError(f"input file not found: {path}")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as e:
        raise AudioInputError(f"cannot read {path} as audio: {e}") from e
    mono = data.mean(axis=1)
    if rate != sample_rate and len(mono):
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    return to_int16(mono)


class FileSource:
    """Replays a file as if it were a microphone: at real-time pace, or as fast as it can."""

    def __init__(self, path: str | Path, frame_ms: int = 20, sample_rate: int = 16000, realtime: bool = True,
                 tail_s: float = 0.0) -> None:
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        pcm = read_audio(path, sample_rate)
        tail = np.zeros(int(tail_s * sample_rate), np.int16)
        self.pcm = np.concatenate([pcm, tail])
        self.realtime = realtime
        self.duration = len(pcm) / sample_rate

    def frames(self, stop: threading.Event) -> Iterator[AudioFrame]:
        n = self.frame_samples
        t0 = time.monotonic()
        for i in range(0, len(self.pcm) - n + 1, n):
            if stop.is_set():
                return
            if self.realtime:
                due = t0 + (i + n) / self.sample_rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield AudioFrame(self.pcm[i:i + n], self.sample_rate, time.monotonic())

    def close(self) -> None:
        pass


class MicrophoneSource:
    """A sounddevice input stream. The callback only copies and enqueues."""

    def __init__(self, device: str | int | None = None, frame_ms: int = 20, sample_rate: int = 16000,
                 queue_frames: int = 500) -> None:
        import sounddevice as sd  # imported here: PortAudio is only needed for live audio

        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        self._q: queue.Queue = queue.Queue(maxsize=queue_frames)
        self.overflows = 0  # blocks dropped because the pipeline fell behind
        self.status_flags = 0  # blocks PortAudio flagged (input overflow etc.)
        self.device_rate = _pick_rate(sd, device, sample_rate, "input")
        self._resampler = (soxr.ResampleStream(self.device_rate, sample_rate, 1, dtype="float32")
                           if self.device_rate != sample_rate else None)
        block = self.device_rate * frame_ms // 1000
        try:
            self._stream = sd.InputStream(device=device, channels=1, samplerate=self.device_rate, dtype="float32",
                                          blocksize=block, callback=self._callback)
            self._stream.start()
        except sd.PortAudioError as e:
            raise AudioInputError(f"cannot open the microphone ({device or 'default'}): {e}") from e
        info = sd.query_devices(self._stream.device)
        log.info("microphone: %s at %d Hz", info["name"], self.device_rate)

    def _callback(self, indata, frames, time_info, status) -> None:
        if status:
            self.status_flags += 1
        try:
            self._q.put_nowait((indata[:, 0].copy(), time.monotonic()))
        except queue.Full:
            self.overflows += 1

    def frames(self, stop: threading.Event) -> Iterator[AudioFrame]:
        pending = np.zeros(0, np.float32)
        n = self.frame_samples
        while not stop.is_set():
            try:
                block, t = self._q.get(timeout=0.1)
            except queue.Empty:
                if not self._stream.active:
                    raise AudioInputError("the microphone stream stopped")
                continue
            if self._resampler is not None:
                block = self._resampler.resample_chunk(block)
            pending = np.concatenate([pending, block])
            while len(pending) >= n:
                frame, pending = pending[:n], pending[n:]
                yield AudioFrame(to_int16(frame), self.sample_rate, t - len(pending) / self.sample_rate)

    def close(self) -> None:
        self._stream.abort(ignore_errors=True)
        self._stream.close(ignore_errors=True)
        if self.overflows or self.status_flags:
            log.warning("microphone: %d blocks dropped (pipeline behind), %d flagged by PortAudio",
                        self.overflows, self.status_flags)


def _pick_rate(sd, device, preferred: int, kind: str) -> int:
    """`preferred` if the device takes it, else the device's own default rate (we resample)."""
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    try:
        check(device=device, samplerate=preferred, channels=1, dtype="float32")
        return preferred
    except (sd.PortAudioError, ValueError) as e:
        try:
            info = sd.query_devices(device, kind)
        except (sd.PortAudioError, ValueError) as e2:
            raise AudioInputError(f"no usable {kind} device ({device or 'default'}): {e2}") from e2
        rate = int(info["default_samplerate"])
        log.info("%s device refuses %d Hz (%s); using %d Hz and resampling", kind, preferred, e, rate)
        return rate


class CaptureStage(threading.Thread):
    """Pulls frames from a source onto the VAD queue; END when the source ends."""

    def __init__(self, source: AudioSource, outbox: queue.Queue, stop: threading.Event, bus: EventBus) -> None:
        super().__init__(name="capture", daemon=True)
        self.source, self.outbox, self.stop, self.bus = source, outbox, stop, bus
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            for frame in self.source.frames(self.stop):
                if not put(self.outbox, frame, self.stop):
                    break
        except AudioInputError as e:
            self.error = e
            log.error("%s", e)
            self.bus.emit("error", text=str(e), stage="capture")
        except Exception as e:
            self.error = e
            log.exception("capture failed")
            self.bus.emit("error", text=f"capture failed: {e}", stage="capture")
        finally:
            put(self.outbox, END, self.stop)
