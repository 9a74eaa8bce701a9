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
from dataclasses import dataclass

from .capture import AudioSource, CaptureStage
from .config import Config
from .echo import EchoCanceller, EchoStage
from .frames import Mute, PushToTalk, WarmUp
from .history import Conversation, Turn
from .llm import ChatModel, LlmStage
from .llm_openai import make_chat_model
from .memory import MemoryStore
from .own_voice import OwnWords
from .playback import AudioSink, PlaybackStage
from .stage import EventBus, Stage
from .supervisor import Supervisor
from .turns import Turns
from .stt import SttStage, Transcriber, WhisperTranscriber
from .piper_voice import PiperSynthesizer
from .tts import Synthesizer, TtsStage
from .skills import SkillRouter
from .vad import VadStage
from .wake import WakePhrase

log = logging.getLogger(__name__)

ECHO_TAIL_S = 0.3  # half-duplex: the room and the device buffer still sound this long after a reply
ATTENTIVE_S = 3.0  # after a reply, each microphone block is needed at once this long (a quick follow-up)


@dataclass
class Engines:
    """The three models, loaded once and shared by every pipeline run in the process."""

    transcriber: Transcriber
    chat: ChatModel
    synthesizer: Synthesizer
    cold: bool = True  # Whisper and Piper have not run yet: the first pipeline started warms them up (Pipeline.start)


def load_engines(config: Config) -> Engines:
    """Load Whisper, the LLM and Piper, one after the other.

    In parallel it took 0.56 s instead of 0.61 s on 2 cores, but their loading peaks (Whisper's
    int8 conversion holds ~100 MB for a moment) added up: 522 MB at the high-water mark
    instead of 429 MB. Piper first: where its graph is still to be optimized (voice.piper_voice),
    that peaks at ~390 MB and leaves ~170, so the others' peaks come after it. The LLM reads its
    system prompt when the pipeline starts, on the LLM stage's thread (see LlmStage)."""
    synthesizer = PiperSynthesizer(config.tts)
    return Engines(WhisperTranscriber(config.stt), make_chat_model(config), synthesizer)


class Pipeline:
    def __init__(self, config: Config, engines: Engines, source: AudioSource, sink: AudioSink,
                 bus: EventBus | None = None, half_duplex: bool = True,
                 conversation: Conversation | None = None, memory: MemoryStore | None = None,
                 echo: EchoCanceller | None = None) -> None:
        """`half_duplex`: the microphone hears the speaker and there is no echo canceller, so it
        may not open a turn while the assistant speaks. With `echo`, the microphone is cleaned of
        the assistant's voice and stays open: the user can interrupt (barge-in)."""
        self.config = config
        self.bus = bus or EventBus()
        self.stop_event = threading.Event()
        self.speaking = threading.Event()
        self.held = threading.Event()  # the reply waits: voice over it may be an interruption (VadStage)
        self.turns = Turns()
        self._user_text: dict[int, str] = {}  # turn -> transcript, until the reply is heard
        self._forget: set[int] = set()  # turns whose reply is not for the history
        self.source, self.sink = source, sink
        self.half_duplex = half_duplex and echo is None
        self._quiet_since = 0.0
        self.bus.subscribe(self._track_speaking)
        self.bus.subscribe(self._remember)
        self.control: queue.Queue = queue.Queue()  # PushToTalk / Mute: read by the VAD before each audio frame
        self.conversation = conversation or Conversation(
            config.llm.system_prompt, engines.chat.count_tokens,
            engines.chat.context_tokens - config.llm.max_tokens - 16,
            turns=memory.load() if memory else (), on_add=memory.append if memory else None)
        self.skills = SkillRouter(self.announce, self.interrupt) if config.skills.enabled else None
        if self.skills is not None:
            self.bus.subscribe(self.skills.observe)

        q = {name: queue.Queue(maxsize=size) for name, size in
             (("audio", config.audio.queue_frames), ("clean", config.audio.queue_frames), ("utterance", 8),
              ("transcript", 8), ("sentence", 64), ("speech", 64))}
        stop, bus = self.stop_event, self.bus
        self._llm_inbox = q["transcript"]
        self.engines, self._warm_up_inboxes = engines, (q["utterance"], q["sentence"])  # Whisper's, Piper's
        mic = q["clean"] if echo else q["audio"]
        self.stages: list[threading.Thread] = [
            CaptureStage(source, q["audio"], stop, bus),
            *([EchoStage(echo, q["audio"], q["clean"], stop, bus)] if echo else []),
            VadStage(config.vad, config.audio.frame_ms, mic, q["utterance"], stop, bus,
                     self.turns, listen_gate=self._may_listen, auto_open=not config.hotkey.key,
                     control=self.control, is_speaking=self.speaking.is_set, barge_in=self.interrupt,
                     hold_reply=self.hold_reply),
            SttStage(config.stt, engines.transcriber, q["utterance"], q["transcript"], stop, bus,
                     wake=WakePhrase(config.hotkey.wake_phrase, config.hotkey.follow_up_s)
                     if config.hotkey.wake_phrase else None, is_retracted=self.turns.is_retracted,
                     own_words=self._own_words(echo)),
            LlmStage(engines.chat, self.conversation, q["transcript"], q["sentence"], stop, bus,
                     first_clause_words=config.llm.first_clause_words, max_piece_words=config.llm.max_piece_words,
                     cancel_for=self.turns.cancel_event, skills=self.skills,
                     committed=lambda turn_id: self.turns.wait_committed(turn_id, self.stop_event, final=True)),
            TtsStage(engines.synthesizer, q["sentence"], q["speech"], stop, bus, self.turns.is_cancelled),
            PlaybackStage(config.output, sink, q["speech"], stop, bus, self.speaking, self.turns, held=self.held,
                          on_played=echo.reference if echo else None,
                          on_discarded=echo.discard if echo else None),
        ]
        self.capture = self.stages[0]
        self.vad = next(stage for stage in self.stages if isinstance(stage, VadStage))
        self.llm = next(stage for stage in self.stages if isinstance(stage, LlmStage))
        self.playback = self.stages[-1]
        self.supervisor = Supervisor(self.stages, stop, bus)
        for device in (source, sink):  # a microphone or speaker that comes and goes tells the user
            if hasattr(device, "notify"):
                device.notify = lambda line: self.bus.emit("device", text=line)
        if hasattr(source, "attentive"):
            source.attentive = self._attentive

    def _own_words(self, echo: EchoCanceller | None) -> OwnWords | None:
        """With the microphone open while it speaks, what the assistant said, to know its echo by."""
        if echo is None:
            return None
        own = OwnWords()
        self.bus.subscribe(own)
        return own

    def _track_speaking(self, event) -> None:
        if event.kind in ("playback_end", "reply_done"):
            self._quiet_since = time.monotonic()

    def _remember(self, event) -> None:
        """The history keeps what the user heard: the reply, or its heard part if interrupted."""
        if event.kind == "transcript":
            self._user_text[event.turn_id] = event.text
        elif event.kind in ("llm_unreachable",) or (event.kind == "skill" and not event.data.get("remember", True)):
            self._forget.add(event.turn_id)
        elif event.kind in ("reply_done", "turn_dropped", "turn_retracted") and event.turn_id is not None:
            user = self._user_text.pop(event.turn_id, None)
            forget = event.turn_id in self._forget
            self._forget.discard(event.turn_id)
            if event.kind == "reply_done" and user and event.text and not forget:
                self.conversation.add(Turn(user, event.text, interrupted=bool(event.data.get("interrupted"))))
                self._warm_up()

    def _warm_up(self) -> None:
        """Let the LLM read the conversation while nobody speaks (see LlmStage._warm_up)."""
        try:
            self._llm_inbox.put_nowait(WarmUp())
        except queue.Full:  # turns are waiting: they go first
            pass

    def interrupt(self, before: int | None = None) -> None:
        """Barge-in: stop speaking now, cancel generation and queued speech of every turn in flight
        (`before`: of those before that turn)."""
        cancelled = self.turns.cancel_open(before)
        self.held.clear()  # the held reply is cancelled, not resumed: the next one plays
        if cancelled:
            self.bus.emit("barge_in", cancelled[-1], turns=cancelled)

    def hold_reply(self, held: bool) -> None:
        """Silence the reply now and keep its place (`held`), or let it play on from there."""
        if held:
            self.held.set()
        else:
            self.held.clear()
        self.bus.emit("reply_held" if held else "reply_resumed")

    def announce(self, text: str, skill: str = "") -> int | None:
        """Speak unprompted (a timer that ended): a turn of its own through TTS and playback,
        never spliced into a reply being queued. Returns its turn id (None once stopped)."""
        if self.stop_event.is_set():
            return None
        turn_id = self.turns.next_id()
        self.turns.commit(turn_id)  # nobody can take it back
        self.bus.emit("announcement", turn_id, text, skill=skill)
        self.llm.say(turn_id, text, skill=skill)
        return turn_id

    def _attentive(self) -> bool:
        """(on the capture thread) Whether each microphone block is needed the moment it comes: a turn
        is open or push-to-talk held (its end is timed), or the assistant speaks or spoke within
        ATTENTIVE_S (a barge-in is timed, and the echo canceller is at work)."""
        return (self.vad.segmenter.in_turn or self.vad.held or self.speaking.is_set()
                or time.monotonic() - self._quiet_since < ATTENTIVE_S)

    def _may_listen(self) -> bool:
        """Half-duplex: the microphone may not open a turn while the assistant's voice is in the room."""
        if not self.half_duplex:
            return True
        return not self.speaking.is_set() and time.monotonic() - self._quiet_since > ECHO_TAIL_S

    def push_to_talk(self, pressed: bool) -> None:
        """The push-to-talk key (or button) went down or up; it overtakes queued audio.

        A press opens a turn even while the half-duplex gate is closed, and stops the reply
        being spoken or prepared (barge-in by key)."""
        if pressed:
            self.interrupt()
        self.control.put(PushToTalk(pressed, time.monotonic()))

    def set_muted(self, muted: bool) -> None:
        """Stop (or resume) feeding microphone frames to the VAD."""
        self.control.put(Mute(muted, time.monotonic()))

    def start(self) -> "Pipeline":
        """Start every stage. Before the first question the LLM reads the system prompt (and a
        conversation restored from memory), and, the first time the engines run, Whisper and Piper
        run once on their stages' threads: their first call costs more than later ones (measured on
        an Intel host: Whisper +20-57 ms, Piper +15-36; live, the first reply's first piece took
        150-235 ms to synthesize where later ones took 70-150), and the first question would pay it."""
        self._warm_up()
        if self.engines.cold:
            self.engines.cold = False
            for inbox in self._warm_up_inboxes:
                inbox.put_nowait(WarmUp())
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
        for stage in self.stages:
            if isinstance(stage, Stage):
                stage.unblock()
        deadline = time.monotonic() + timeout
        stuck = []
        for stage in self.stages:
            stage.join(max(0.0, deadline - time.monotonic()))
            if stage.is_alive():
                stuck.append(stage.name)
        if stuck:
            log.error("stages still running after %.1f s: %s", timeout, ", ".join(stuck))
        if self.skills is not None:
            self.skills.close()  # running timers end silently with the assistant
        self.source.close()
        self.sink.close()
        return stuck
