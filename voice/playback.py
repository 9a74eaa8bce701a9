"""Audio sinks and the playback stage.

An AudioSink takes float32 mono blocks at its own rate; speakers and a WAV writer are two
sinks. The playback stage resamples each sentence to the sink's rate and writes it in
short blocks, so an interruption can stop it between blocks.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import soundfile
import soxr

from .config import OutputConfig
from .devices import PORTAUDIO, DeviceStream, HasDevice
from .frames import ReplyEnd, SpeechAudio
from .stage import EventBus, Stage
from .turns import Turns

log = logging.getLogger(__name__)

HOLD_AHEAD_S = 0.05  # a held reply's silence is written at most this far ahead of real time


class AudioOutputError(RuntimeError):
    """An output device or file cannot be used."""


class AudioSink(Protocol):
    sample_rate: int

    def write(self, block: np.ndarray) -> bool:
        """Play (or store) a float32 mono block; returns when the sink has taken it.

        False if the block was dropped (the device is gone): nobody heard it."""
        ...

    def discard(self) -> None:
        """Drop whatever is buffered but not yet heard (barge-in)."""
        ...

    def close(self) -> None: ...


class WavSink:
    """Writes what would have been played to a WAV file.

    With `pace` it behaves like a sound card: writes take real time, and silence fills the
    gaps between replies, so the file lines up with a real-time input.
    """

    def __init__(self, path: str | Path, sample_rate: int = 22050, pace: bool = False) -> None:
        self.sample_rate = sample_rate
        self.pace = pace
        try:
            self._file = soundfile.SoundFile(str(path), "w", sample_rate, 1, "PCM_16")
        except (soundfile.LibsndfileError, RuntimeError, OSError) as e:
            raise AudioOutputError(f"cannot write {path}: {e}") from e
        self._t0 = time.monotonic()
        self._written = 0  # samples
        self._lock = threading.Lock()

    def write(self, block: np.ndarray) -> None:
        with self._lock:
            if self.pace:
                due = int((time.monotonic() - self._t0) * self.sample_rate)
                if due > self._written:
                    self._file.write(np.zeros(due - self._written, np.float32))
                    self._written = due
            self._file.write(block)
            self._written += len(block)
        if self.pace:
            time.sleep(max(0.0, self._t0 + self._written / self.sample_rate - time.monotonic()))
        return True

    def discard(self) -> None:
        pass

    def close(self) -> None:
        with self._lock:
            self._file.close()


class SpeakerSink(HasDevice):
    """A sounddevice output stream, written with blocking writes from the playback thread.

    If the device goes away, the write that failed and those after it are dropped (counted
    in `dropped_s`) while its DeviceStream reopens it with backoff; `notify` tells the user.
    """

    def __init__(self, device: str | int | None = None, preferred_rate: int = 22050) -> None:
        import sounddevice as sd

        from .capture import AudioInputError, _pick_rate

        self.device = device
        try:
            self.sample_rate = _pick_rate(sd, device, preferred_rate, "output")
        except AudioInputError as e:
            raise AudioOutputError(str(e)) from e
        self.underflows = 0
        self.dropped_s = 0.0  # audio not played because the device was gone
        self._resampler = None  # when a device that came back refuses `sample_rate`
        self._device = DeviceStream("speaker", self._open)
        try:
            self._device.open()
        except (sd.PortAudioError, ValueError) as e:
            self._device.close()
            raise AudioOutputError(f"cannot open the speaker ({device or 'default'}): {e}") from e

    def _open(self):
        import sounddevice as sd

        from .capture import _pick_rate

        rate = _pick_rate(sd, self.device, self.sample_rate, "output")
        self._resampler = (soxr.ResampleStream(self.sample_rate, rate, 1, dtype="float32")
                           if rate != self.sample_rate else None)
        stream = sd.OutputStream(device=self.device, channels=1, samplerate=rate, dtype="float32", latency="low")
        try:
            stream.start()
        except sd.PortAudioError:
            stream.close(ignore_errors=True)
            raise
        log.info("speaker: %s at %d Hz", sd.query_devices(stream.device)["name"], rate)
        return stream

    def write(self, block: np.ndarray) -> bool:
        import sounddevice as sd

        with PORTAUDIO.lock:
            if not self._device.ensure():
                self.dropped_s += len(block) / self.sample_rate
                return False
            if self._resampler is not None:
                block = self._resampler.resample_chunk(block)
            try:
                if self._device.stream.write(block.reshape(-1, 1)):
                    self.underflows += 1
            except sd.PortAudioError as e:
                self.dropped_s += len(block) / self.sample_rate
                self._device.lost(f"write failed: {e}")
                return False
            return True

    def discard(self) -> None:
        import sounddevice as sd

        with PORTAUDIO.lock:
            stream = self._device.stream
            if stream is None:
                return
            stream.abort(ignore_errors=True)
            try:
                stream.start()
            except sd.PortAudioError as e:
                self._device.lost(f"restart failed: {e}")

    def close(self) -> None:
        self._device.close()
        if self.dropped_s:
            log.warning("speaker: %.1f s of replies not played (the device was gone)", self.dropped_s)


class PlaybackStage(Stage):
    """SpeechAudio in, sound out, in the order the turns were committed.

    A speculative turn's audio waits here until the turn is committed, and is dropped if it
    is cancelled. A turn cancelled while playing (barge-in) stops between two blocks; the
    words heard so far are reported with an `interrupted` event and its `reply_done` (`cut`: the
    last of them broke off mid-sentence; a display marks that with "...").
    `speaking` is set from a reply's first block until its end. While `held` is set the reply
    waits and the sink gets silence; it plays on from there once `held` is cleared, unless it was
    cancelled meanwhile. `on_played` gets every block
    the sink played, with the time it was handed over (the echo canceller's reference: a block a
    lost speaker dropped made no echo), and `on_discarded` the time the sink dropped what it held.
    """

    def __init__(self, config: OutputConfig, sink: AudioSink, inbox: queue.Queue, stop: threading.Event,
                 bus: EventBus, speaking: threading.Event, turns: Turns, held: threading.Event | None = None,
                 on_played: Callable[[np.ndarray, int, float], None] | None = None,
                 on_discarded: Callable[[float], None] | None = None) -> None:
        super().__init__("playback", inbox, None, stop, bus)
        self.sink = sink
        self.block = max(1, sink.sample_rate * config.block_ms // 1000)
        self.speaking = speaking
        self.turns = turns
        self.held = held or threading.Event()
        self.on_played, self.on_discarded = on_played, on_discarded
        self._heard: dict[int, list[str]] = {}  # turn -> sentences (or parts) played so far
        self._played_s: dict[int, float] = {}
        self._cut: dict[int, bool] = {}  # turns whose interruption has been reported -> cut mid-sentence

    def handle(self, item: SpeechAudio | ReplyEnd) -> None:
        if not self.turns.wait_committed(item.turn_id, self.stop):
            if isinstance(item, ReplyEnd):
                self._end(item)
            elif item.turn_id in self._heard and item.turn_id not in self._cut:  # cancelled between sentences
                self._interrupt(item, 0.0)
            return
        if isinstance(item, ReplyEnd):
            self._end(item)
            return
        pcm = item.pcm
        if item.sample_rate != self.sink.sample_rate:
            pcm = soxr.resample(pcm, item.sample_rate, self.sink.sample_rate).astype(np.float32)
        i = 0
        while i < len(pcm):
            if self.stop.is_set():
                return
            if self.turns.is_cancelled(item.turn_id):
                self._interrupt(item, i / len(pcm))
                return
            if self.held.is_set() and item.turn_id in self._heard:
                self._hold(item.turn_id)
                continue
            if item.turn_id not in self._heard:
                self._heard[item.turn_id] = []
                self.speaking.set()
                self.bus.emit("playback_start", item.turn_id)
            block = pcm[i:i + self.block]
            handed = time.monotonic()  # a block after a pause sounds from here (write may wait for room)
            if self.sink.write(block) and self.on_played is not None:
                self.on_played(block, self.sink.sample_rate, handed)
            self._played_s[item.turn_id] = self._played_s.get(item.turn_id, 0.0) + len(block) / self.sink.sample_rate
            i += len(block)
        if item.ends >= 1.0:  # the sentence's last block
            self._heard.setdefault(item.turn_id, []).append(item.text)
            self.bus.emit("sentence_played", item.turn_id, item.text, index=item.index)

    def _hold(self, turn_id: int) -> None:
        """Play silence until `held` is cleared (or the reply is cancelled, or the pipeline stops).
        What the sink holds still plays out (~10 ms on PulseAudio), so nothing is lost and nothing
        is played twice; a speaker stream aborted instead would restart with another delay, which
        the echo canceller would have to find again."""
        silence = np.zeros(self.block, np.float32)
        played_until = time.monotonic()
        while self.held.is_set() and not self.turns.is_cancelled(turn_id) and not self.stop.is_set():
            handed = time.monotonic()
            if self.sink.write(silence) and self.on_played is not None:
                self.on_played(silence, self.sink.sample_rate, handed)
            # a speaker's write waits for room; a file takes the block at once: silence at real-time pace
            played_until = max(played_until, handed) + len(silence) / self.sink.sample_rate
            time.sleep(max(0.0, played_until - HOLD_AHEAD_S - time.monotonic()))

    def _interrupt(self, item: SpeechAudio, fraction: float) -> None:
        """Cancelled `fraction` of the way through `item`'s block: the words of its sentence up to there were heard."""
        self.sink.discard()
        if self.on_discarded is not None:
            self.on_discarded(time.monotonic())
        words = item.text.split()
        part = " ".join(words[:int(len(words) * (item.begins + (item.ends - item.begins) * fraction))])
        heard = self._heard.setdefault(item.turn_id, [])
        if part:
            heard.append(part)
        self._cut[item.turn_id] = bool(part)
        self.speaking.clear()
        self.bus.emit("interrupted", item.turn_id, " ".join(heard), cut=bool(part))

    def _end(self, end: ReplyEnd) -> None:
        committed, cancelled = self.turns.is_committed(end.turn_id), self.turns.is_cancelled(end.turn_id)
        self.turns.done(end.turn_id)
        heard = self._heard.pop(end.turn_id, None)
        played = self._played_s.pop(end.turn_id, 0.0)
        cut = self._cut.pop(end.turn_id, False)
        if heard is not None:
            self.bus.emit("playback_end", end.turn_id, played_s=round(played, 3))
        self.speaking.clear()
        if not committed:  # retracted speculation: nobody asked
            return
        if cancelled:
            self.bus.emit("reply_done", end.turn_id, " ".join(heard or []), interrupted=True, cut=cut,
                          written=end.text)
        else:
            self.bus.emit("reply_done", end.turn_id, end.text)

    def finish(self) -> None:
        self.speaking.clear()
