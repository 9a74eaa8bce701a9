"""Text to speech: the Synthesizer protocol (Piper's is voice.piper_voice), and the TTS stage."""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Iterator, Protocol

import numpy as np

from .frames import ReplyEnd, ReplySentence, SpeechAudio, WarmUp
from .stage import EventBus, Stage

log = logging.getLogger(__name__)

WARM_UP_TEXT = "Hello."
# Piper begins each sentence with 15-55 ms under -60 dBFS (the first 20 ms at -80 to -90): silence
# that, at the start of a reply, is only latency. The first piece of a reply is played from
# LEAD_KEEP_MS before its first sample over LEAD_FLOOR_DBFS; later pieces keep their lead, the gap
# between two sentences.
LEAD_FLOOR_DBFS = -60.0
LEAD_KEEP_MS = 5


@dataclass(frozen=True)
class Sound:
    """A block of synthesized audio and the part of the text it speaks."""

    pcm: np.ndarray  # float32 mono in [-1, 1], at the synthesizer's sample rate
    begins: float  # fraction of the text's audio before this block
    ends: float  # ... and up to its end (1.0: the last block)


class Synthesizer(Protocol):
    sample_rate: int  # Hz

    def synthesize(self, text: str) -> Iterator[Sound]:
        """`text` spoken, in blocks as they are ready: the first as soon as may be."""
        ...


def without_lead(pcm: np.ndarray, sample_rate: int) -> np.ndarray:
    """`pcm` from LEAD_KEEP_MS before its first sample over LEAD_FLOOR_DBFS (all of it if none is)."""
    loud = np.flatnonzero(np.abs(pcm) > 10 ** (LEAD_FLOOR_DBFS / 20))
    if not len(loud):
        return pcm
    return pcm[max(0, loud[0] - sample_rate * LEAD_KEEP_MS // 1000):]


class TtsStage(Stage):
    """ReplySentence in, SpeechAudio out; ReplyEnd passes through in order."""

    def __init__(self, synthesizer: Synthesizer, inbox: queue.Queue, outbox: queue.Queue,
                 stop: threading.Event, bus: EventBus, is_cancelled=lambda turn_id: False) -> None:
        super().__init__("tts", inbox, outbox, stop, bus)
        self.synthesizer = synthesizer
        self.is_cancelled = is_cancelled

    def handle(self, item: ReplySentence | ReplyEnd | WarmUp) -> None:
        if isinstance(item, WarmUp):  # see Pipeline.start
            for _sound in self.synthesizer.synthesize(WARM_UP_TEXT):
                pass
            return
        if isinstance(item, ReplyEnd):
            self.emit(item)
            return
        if self.is_cancelled(item.turn_id):
            return
        first = item.index == 0
        for sound in self.synthesizer.synthesize(item.text):
            if self.is_cancelled(item.turn_id) or self.stop.is_set():
                return
            now, pcm = time.monotonic(), sound.pcm
            if first:  # the reply's first sound: what the user waits for
                pcm, first = without_lead(pcm, self.synthesizer.sample_rate), False
                self.bus.emit("tts_audio", item.turn_id, item.text, t=now)
            self.emit(SpeechAudio(item.turn_id, item.index, item.text, pcm, self.synthesizer.sample_rate, now,
                                  sound.begins, sound.ends))
