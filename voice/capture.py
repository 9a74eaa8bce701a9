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
from typing import Callable, Iterator, Protocol

import numpy as np
import soundfile
import soxr

from .devices import PORTAUDIO, DeviceStream, HasDevice
from .frames import END, AudioFrame
from .stage import EventBus, name_os_thread, put

log = logging.getLogger(__name__)

STALL_S = 2.0  # a microphone that delivers nothing this long is treated as lost
# Listening to a still room, blocks are read RELAXED_POLL_S apart, several at a time, not each as it
# comes (see MicrophoneSource.frames): once the microphone has been below QUIET_RMS for RELAX_AFTER_S
# and the pipeline does not need each block at once (`attentive`).
# Below the VAD's floor (-55 dBFS) nobody speaks. By level, not by the loudest sample: a room's
# noise at -60 dBFS has peaks at -48, and by its peaks the room was never still (in-process on such
# noise, idle listening took 3.3-3.8 % of a core on an Intel host, as if it were never relaxed).
QUIET_RMS = 10 ** (-55 / 20)
RELAX_AFTER_S = 1.0
RELAXED_POLL_S = 0.06
OVERFLOW_REPORT_S = 10.0  # at most one overflow warning this often


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
    if path.stat().st_size == 0:
        raise AudioInputError(f"input file is empty: {path}")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as e:
        raise AudioInputError(f"cannot read {path} as audio: {e}") from e
    mono = data.mean(axis=1)
    if rate != sample_rate and len(mono):
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    return to_int16(mono)


class FileSource:
    """Replays a file as if it were a microphone: at real-time pace, or as fast as it can. At
    real-time pace it reads a still room as the microphone does (MicrophoneSource: `attentive`),
    several frames at a time, each with the time it was due, so a replay listens idly as live
    mode does."""

    def __init__(self, path: str | Path, frame_ms: int = 20, sample_rate: int = 16000, realtime: bool = True,
                 tail_s: float = 0.0) -> None:
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        pcm = read_audio(path, sample_rate)
        tail = np.zeros(int(tail_s * sample_rate), np.int16)
        self.pcm = np.concatenate([pcm, tail])
        self.realtime = realtime
        self.duration = len(pcm) / sample_rate
        self.attentive: Callable[[], bool] = lambda: True

    def frames(self, stop: threading.Event) -> Iterator[AudioFrame]:
        n = self.frame_samples
        t0 = loud_t = time.monotonic()
        for i in range(0, len(self.pcm) - n + 1, n):
            if stop.is_set():
                return
            frame = self.pcm[i:i + n]
            if not self.realtime:
                yield AudioFrame(frame, self.sample_rate, time.monotonic())
                continue
            due = t0 + (i + n) / self.sample_rate
            delay = due - time.monotonic()  # read once: a second reading may be past `due`, and sleep(-x) raises
            if delay > 0:
                time.sleep(delay + (RELAXED_POLL_S if still(loud_t, self.attentive) else 0.0))
            if not quiet(frame.astype(np.float32) / 32768):
                loud_t = due
            yield AudioFrame(frame, self.sample_rate, due)

    def close(self) -> None:
        pass


def quiet(block: np.ndarray) -> bool:
    """Whether a block of float samples is below the VAD's floor (QUIET_RMS)."""
    return not len(block) or float(np.mean(np.square(block))) < QUIET_RMS ** 2


def still(loud_t: float, attentive: Callable[[], bool]) -> bool:
    """The room still since `loud_t` for RELAX_AFTER_S, and nothing needs each block at once: a
    source may then read RELAXED_POLL_S of them together."""
    return time.monotonic() - loud_t > RELAX_AFTER_S and not attentive()


class MicrophoneSource(HasDevice):
    """A sounddevice input stream. The callback only copies and enqueues: the block's bytes, from a
    raw stream (sounddevice's numpy view of each block, and its copy, took the callback thread from
    1.2 to 1.8 % of a core on an AVX2 AMD host; with bytes it stays at 1.2).

    A lost device (the stream stops, or delivers nothing for STALL_S) is reopened with
    backoff by its DeviceStream; frames pause meanwhile and `notify` tells the user.

    `attentive` (set by the pipeline) says whether each block is needed the moment it comes: while a
    turn is open, the assistant speaks or has just spoken. When not, and the room has been still
    for RELAX_AFTER_S, the blocks of RELAXED_POLL_S are read together: every block wakes this
    thread, and through it the echo and VAD stages, so idle listening then wakes them a third as
    often. The first loud block makes it attentive again, up to RELAXED_POLL_S late: the first
    syllable's frames keep their capture times, and the VAD's pre-roll has them.
    """

    def __init__(self, device: str | int | None = None, frame_ms: int = 20, sample_rate: int = 16000,
                 queue_frames: int = 500) -> None:
        import sounddevice as sd  # imported here: PortAudio is only needed for live audio

        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        self.device, self.frame_ms = device, frame_ms
        self._q: queue.Queue = queue.Queue(maxsize=queue_frames)
        self.overflows = 0  # blocks dropped because the pipeline fell behind
        self.status_flags = 0  # blocks PortAudio flagged (input overflow etc.)
        self._reported_overflows, self._overflow_report_t = 0, 0.0
        self._last_block = self._loud_t = time.monotonic()
        self.attentive: Callable[[], bool] = lambda: True
        self._resampler = None
        self._device = DeviceStream("microphone", self._open)
        try:
            self._device.open()
        except (sd.PortAudioError, ValueError) as e:
            self._device.close()
            raise AudioInputError(f"cannot open the microphone ({device or 'default'}): {e}") from e

    def _open(self):
        """Open and start a stream on the device (at start, and again after the device was lost)."""
        import sounddevice as sd

        self.device_rate = _pick_rate(sd, self.device, self.sample_rate, "input")
        self._resampler = (soxr.ResampleStream(self.device_rate, self.sample_rate, 1, dtype="float32")
                           if self.device_rate != self.sample_rate else None)
        stream = sd.RawInputStream(device=self.device, channels=1, samplerate=self.device_rate, dtype="float32",
                                blocksize=self.device_rate * self.frame_ms // 1000, latency="low",
                                callback=self._callback)  # PortAudio's default input latency is "high"
        try:
            stream.start()
        except sd.PortAudioError:
            stream.close(ignore_errors=True)
            raise
        self._last_block = time.monotonic()
        log.info("microphone: %s at %d Hz", sd.query_devices(stream.device)["name"], self.device_rate)
        return stream

    def _callback(self, indata, frames, time_info, status) -> None:
        if status:
            self.status_flags += 1
        try:
            self._q.put_nowait((bytes(indata), time.monotonic()))
        except queue.Full:
            self.overflows += 1

    def frames(self, stop: threading.Event) -> Iterator[AudioFrame]:
        pending = np.zeros(0, np.float32)
        n = self.frame_samples
        while not stop.is_set():
            if not self._device.ensure():  # lost: retried with backoff, frames resume when it is back
                stop.wait(0.1)
                continue
            if self._q.empty() and still(self._loud_t, self.attentive):
                stop.wait(RELAXED_POLL_S)  # the blocks meanwhile are read one after the other
            try:
                raw, t = self._q.get(timeout=0.1)
            except queue.Empty:
                self._check_alive()
                continue
            block = np.frombuffer(raw, np.float32)
            self._last_block = time.monotonic()
            if not quiet(block):
                self._loud_t = t
            self._report_overflows()
            if self._resampler is not None:
                block = self._resampler.resample_chunk(block)
            pending = np.concatenate([pending, block])
            while len(pending) >= n:
                frame, pending = pending[:n], pending[n:]
                yield AudioFrame(to_int16(frame), self.sample_rate, t - len(pending) / self.sample_rate)

    def _check_alive(self) -> None:
        """No block came: a stream PortAudio stopped, or one that went silent, lost its device."""
        with PORTAUDIO.lock:
            stream = self._device.stream
            if stream is None:
                return
            if not stream.active:
                self._device.lost("the input stream stopped")
            elif time.monotonic() - self._last_block > STALL_S:
                self._device.lost(f"no audio for {STALL_S:.0f} s")

    def _report_overflows(self) -> None:
        """A warning when blocks were dropped, at most one per OVERFLOW_REPORT_S."""
        now = time.monotonic()
        if self.overflows > self._reported_overflows and now - self._overflow_report_t >= OVERFLOW_REPORT_S:
            log.warning("microphone: %d blocks dropped so far (the pipeline fell behind)", self.overflows)
            self._reported_overflows, self._overflow_report_t = self.overflows, now

    def close(self) -> None:
        self._device.close()
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
        name_os_thread(self.name)
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
