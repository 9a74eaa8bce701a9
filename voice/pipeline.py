"""Wiring: the stages of the assistant, their queues, and how it starts and stops.

    source -> capture -> vad -> stt -> llm (+ sentence splitter) -> tts -> playback -> sink

Each arrow is a bounded queue of typed frames; each stage is a thread. The window, the
console and the metrics writer only subscribe to the event bus: the pipeline does not
know about them.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .capture import AudioSource, CaptureStage
from .config import Config
from .frames import Mute, PushToTalk
from .history import Conversation
from .llm import ChatModel, LlmStage
from .llm_openai import make_chat_model
from .playback import AudioSink, PlaybackStage
from .stage import EventBus
from .supervisor import Supervisor
from .stt import SttStage, Transcriber, WhisperTranscriber
from .tts import PiperSynthesizer, Synthesizer, TtsStage
from .vad import VadStage
from .wake import WakePhrase

log = logging.getLogger(__name__)

ECHO_TAIL_S = 0.3  # half-duplex: the room and the device buffer still sound this long after a reply


@dataclass
class Engines:
    """The three models, loaded once and shared by every pipeline run in the process."""

    transcriber: Transcriber
    chat: ChatModel
    synthesizer: Synthesizer


def load_engines(config: Config) -> Engines:
    """Load Whisper, the LLM and Piper in parallel (each releases the GIL while it loads)."""
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="load") as pool:
        stt = pool.submit(WhisperTranscriber, config.stt)
        llm = pool.submit(make_chat_model, config)
        tts = pool.submit(PiperSynthesizer, config.tts)
        engines = Engines(stt.result(), llm.result(), tts.result())
    if hasattr(engines.chat, "warm_up"):
        engines.chat.warm_up(config.llm.system_prompt)
    return engines


class Turns:
    """Turn ids and per-turn cancellation, shared by the stages."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._cancel: dict[int, threading.Event] = {}
        self._lock = threading.Lock()

    def next_id(self) -> int:
        return next(self._ids)

    def cancel_event(self, turn_id: int) -> threading.Event:
        with self._lock:
            return self._cancel.setdefault(turn_id, threading.Event())

    def cancel(self, turn_id: int) -> None:
        self.cancel_event(turn_id).set()

    def is_cancelled(self, turn_id: int) -> bool:
        with self._lock:
            event = self._cancel.get(turn_id)
        return event is not None and event.is_set()


class Pipeline:
    def __init__(self, config: Config, engines: Engines, source: AudioSource, sink: AudioSink,
                 bus: EventBus | None = None, half_duplex: bool = True,
                 conversation: Conversation | None = None) -> None:
        self.config = config
        self.bus = bus or EventBus()
        self.stop_event = threading.Event()
        self.speaking = threading.Event()
        self.turns = Turns()
        self.source, self.sink = source, sink
        self.half_duplex = half_duplex
        self._quiet_since = 0.0
        self.bus.subscribe(self._track_speaking)
        self.control: queue.Queue = queue.Queue()  # PushToTalk / Mute: read by the VAD before each audio frame
        self.conversation = conversation or Conversation(
            config.llm.system_prompt, engines.chat.count_tokens,
            engines.chat.context_tokens - config.llm.max_tokens - 16)

        q = {name: queue.Queue(maxsize=size) for name, size in
             (("audio", config.audio.queue_frames), ("utterance", 8), ("transcript", 8), ("sentence", 64),
              ("speech", 64))}
        stop, bus = self.stop_event, self.bus
        self.stages: list[threading.Thread] = [
            CaptureStage(source, q["audio"], stop, bus),
            VadStage(config.vad, config.audio.frame_ms, q["audio"], q["utterance"], stop, bus,
                     self.turns.next_id, listen_gate=self._may_listen, auto_open=not config.hotkey.key,
                     control=self.control),
            SttStage(config.stt, engines.transcriber, q["utterance"], q["transcript"], stop, bus,
                     wake=WakePhrase(config.hotkey.wake_phrase, config.hotkey.follow_up_s)
                     if config.hotkey.wake_phrase else None),
            LlmStage(engines.chat, self.conversation, q["transcript"], q["sentence"], stop, bus,
                     cancel_for=self.turns.cancel_event),
            TtsStage(engines.synthesizer, q["sentence"], q["speech"], stop, bus, self.turns.is_cancelled),
            PlaybackStage(config.output, sink, q["speech"], stop, bus, self.speaking, self.turns.is_cancelled),
        ]
        self.capture, self.vad = self.stages[0], self.stages[1]
        self.playback = self.stages[-1]
        self.supervisor = Supervisor(self.stages, stop, bus)
        for device in (source, sink):  # a microphone or speaker that comes and goes tells the user
            if hasattr(device, "notify"):
                device.notify = lambda line: self.bus.emit("device", text=line)

    def _track_speaking(self, event) -> None:
        if event.kind in ("playback_end", "reply_done"):
            self._quiet_since = time.monotonic()

    def _may_listen(self) -> bool:
        """Half-duplex: the microphone may not open a turn while the assistant's voice is in the room."""
        if not self.half_duplex:
            return True
        return not self.speaking.is_set() and time.monotonic() - self._quiet_since > ECHO_TAIL_S

    def push_to_talk(self, pressed: bool) -> None:
        """The push-to-talk key (or button) went down or up; it overtakes queued audio.

        A press opens a turn even while the half-duplex gate is closed."""
        self.control.put(PushToTalk(pressed, time.monotonic()))

    def set_muted(self, muted: bool) -> None:
        """Stop (or resume) feeding microphone frames to the VAD."""
        self.control.put(Mute(muted, time.monotonic()))

    def start(self) -> "Pipeline":
        for stage in self.stages:
            stage.start()
        self.supervisor.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Until the input is drained and every reply has played (True), or `timeout` passes."""
        self.playback.join(timeout)
        return not self.playback.is_alive()

    def run(self) -> None:
        """Start, drain, stop: a replay from a file."""
        self.start()
        try:
            while not self.wait(0.2):
                if self.stop_event.is_set():
                    break
        finally:
            self.stop()

    def stop(self, timeout: float = 2.0) -> list[str]:
        """Cancel at once and join every stage; returns the names of stages that did not stop.

        Stopping twice is harmless."""
        if self.stop_event.is_set() and not any(stage.is_alive() for stage in self.stages):
            return []
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        stuck = []
        for stage in self.stages:
            stage.join(max(0.0, deadline - time.monotonic()))
            if stage.is_alive():
                stuck.append(stage.name)
        if stuck:
            log.error("stages still running after %.1f s: %s", timeout, ", ".join(stuck))
        self.source.close()
        self.sink.close()
        return stuck
