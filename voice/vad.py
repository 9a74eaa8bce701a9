"""Voice activity: webrtcvad says "speech or not" per frame; a pure state machine cuts turns.

The segmenter knows nothing of audio or threads: it takes one boolean (and an opaque
payload) per frame, so it is tested with lists of booleans. States:

    quiet    -> starting  first voiced frame
    starting -> speaking  `start_ms` of voice within `start_window_ms`   (emits Opened)
    starting -> quiet     the window passes without enough voice
    speaking -> stopping  an unvoiced frame
    stopping -> speaking  a voiced frame before `end_silence_ms` of silence
    stopping -> quiet     `end_silence_ms` of silence                        (emits Closed or Dropped)

With `speculate_ms`, a shorter pause inside `stopping` emits Paused (the turn so far, so
that transcription and the reply can start before the end-of-turn window has run out) and
voice after it emits Resumed (that work is to be thrown away). The VAD stage may end a
paused turn before the window has run out, when its transcript reads as finished
(voice.turn_end); voice within the window still takes it back.

A pre-roll ring buffer keeps `pre_roll_ms` of audio from before the first voiced frame.
Push-to-talk forces the state with `force_open` / `force_close`; with `auto_open=False`
voice alone never opens a turn.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import webrtcvad

from .config import VadConfig
from .frames import AudioFrame, Mute, PushToTalk, Utterance
from .level import FLOOR_DBFS, LevelMeter, dbfs
from .stage import EventBus, Stage
from .talk_over import TalkOver
from .turn_end import reads_finished
from .turns import Turns

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Opened:
    t_start: float  # monotonic s of the first voiced frame


@dataclass(frozen=True)
class Closed:
    payloads: list  # frames of the turn, pre-roll included
    t_start: float  # first voiced frame
    t_end: float  # last voiced frame
    voiced_ms: int
    cut: bool  # closed by the maximum turn length, not by silence


@dataclass(frozen=True)
class Paused:
    payloads: list  # frames of the turn so far
    t_start: float
    t_end: float  # last voiced frame


@dataclass(frozen=True)
class Resumed:
    """Voice came back after a Paused: the turn goes on."""


@dataclass(frozen=True)
class Dropped:
    voiced_ms: int  # too little voice: a click, a cough


# Speculation pays on short questions; on a long turn each pause would cost a long transcription.
SPECULATE_MAX_S = 10
# An interruption of this many words or fewer ("Okay.", "Stop.", or an "Oh" the canceller left
# half of, heard as "So, hello.") waits for the whole end-of-turn window however finished it
# reads: the user often goes on ("Stop. What about Germany?"), and a reply begun in that pause
# is the assistant talking over them (e2e with room echo: 1 such reply in 10 interruptions)
INTERJECTION_WORDS = 2

Outcome = Opened | Paused | Resumed | Closed | Dropped | None


class Segmenter:
    """Hysteresis over per-frame speech decisions. All lengths are in frames internally."""

    def __init__(self, frame_ms: int, start_ms: int, start_window_ms: int, min_speech_ms: int,
                 end_silence_ms: int, pre_roll_ms: int, max_turn_ms: int, auto_open: bool = True,
                 speculate_ms: int = 0) -> None:
        def frames(ms: float) -> int:
            return max(1, int(round(ms / frame_ms)))

        self.frame_ms = frame_ms
        self.start_frames = frames(start_ms)
        self.window_frames = max(self.start_frames, frames(start_window_ms))
        self.min_speech_frames = frames(min_speech_ms) if min_speech_ms > 0 else 0
        self.end_frames = frames(end_silence_ms)
        self.pre_roll_frames = int(round(pre_roll_ms / frame_ms))
        self.max_frames = frames(max_turn_ms)
        self.speculate_frames = frames(speculate_ms) if 0 < speculate_ms < end_silence_ms else 0
        self.auto_open = auto_open
        self._ring: collections.deque = collections.deque(maxlen=self.pre_roll_frames + self.window_frames)
        self.reset()

    @classmethod
    def from_config(cls, c: VadConfig, frame_ms: int, auto_open: bool = True) -> "Segmenter":
        return cls(frame_ms, c.start_ms, c.start_window_ms, c.min_speech_ms, c.end_silence_ms,
                   c.pre_roll_ms, int(c.max_turn_s * 1000), auto_open, c.speculate_ms)

    def reset(self) -> None:
        """Forget any turn in progress (used while the assistant speaks, half-duplex)."""
        self._ring.clear()
        self._turn: list | None = None
        self._forced = False
        self._paused = False  # a Paused was emitted and no voice has come since
        self._voiced = 0
        self._silence = 0
        self._t_start = self._t_last_voiced = 0.0

    @property
    def state(self) -> str:
        if self._turn is None:
            return "starting" if any(v for _, v, _ in self._ring) else "quiet"
        return "stopping" if self._silence else "speaking"

    @property
    def in_turn(self) -> bool:
        return self._turn is not None

    @property
    def silence_ms(self) -> int:
        """Silence since the last voiced frame of the turn in progress."""
        return self._silence * self.frame_ms if self._turn is not None else 0

    @property
    def voiced_ms(self) -> int:
        """Voice heard so far in the turn in progress."""
        return self._voiced * self.frame_ms if self._turn is not None else 0

    def push(self, voiced: bool, payload: Any = None, t: float = 0.0) -> Outcome:
        if self._turn is None:
            return self._push_quiet(voiced, payload, t)
        return self._push_turn(voiced, payload, t)

    def force_open(self, t: float) -> Opened:
        """Push-to-talk pressed: open a turn now, with the pre-roll."""
        if self._turn is None:
            self._open(t, first=max(0, len(self._ring) - self.pre_roll_frames))
        self._forced = True
        return Opened(self._t_start)

    def force_close(self, t: float) -> Outcome:
        """Push-to-talk released: the turn ends now, with no silence window."""
        if self._turn is None:
            return None
        return self._close(cut=False, t_end=self._t_last_voiced or t)

    def flush(self) -> Outcome:
        """The input ended: close a turn in progress as if silence had followed."""
        if self._turn is None:
            return None
        return self._close(cut=False, t_end=self._t_last_voiced)

    def _push_quiet(self, voiced: bool, payload: Any, t: float) -> Outcome:
        self._ring.append((payload, voiced, t))
        if not self.auto_open:
            return None
        recent = list(self._ring)[-self.window_frames:]
        if sum(v for _, v, _ in recent) < self.start_frames:
            return None
        first_voiced = len(self._ring) - len(recent) + next(i for i, (_, v, _) in enumerate(recent) if v)
        self._open(t, first=max(0, first_voiced - self.pre_roll_frames))
        return Opened(self._t_start)

    def _open(self, t: float, first: int) -> None:
        ring = list(self._ring)[first:]
        self._turn = [p for p, _, _ in ring]
        voiced = [(ft, v) for _, v, ft in ring if v]
        self._voiced = len(voiced)
        self._t_start = voiced[0][0] if voiced else t
        self._t_last_voiced = voiced[-1][0] if voiced else 0.0
        # silence since the last voiced frame of the window already counts
        self._silence = 0
        for _, v, _ in reversed(ring):
            if v:
                break
            self._silence += 1
        self._ring.clear()

    def _push_turn(self, voiced: bool, payload: Any, t: float) -> Outcome:
        self._turn.append(payload)
        if voiced:
            self._voiced += 1
            self._silence = 0
            self._t_last_voiced = t
        else:
            self._silence += 1
        if self._silence >= self.end_frames and not self._forced:
            return self._close(cut=False, t_end=self._t_last_voiced)
        if len(self._turn) >= self.max_frames:
            return self._close(cut=True, t_end=t)
        if voiced and self._paused:
            self._paused = False
            return Resumed()
        if (self.speculate_frames and self._silence == self.speculate_frames and not self._forced
                and len(self._turn) <= SPECULATE_MAX_S * 1000 // self.frame_ms
                and self._voiced * self.frame_ms >= self.min_speech_frames * self.frame_ms):
            self._paused = True
            return Paused(list(self._turn), self._t_start, self._t_last_voiced)
        return None

    def _close(self, cut: bool, t_end: float) -> Outcome:
        keep = len(self._turn) - max(0, self._silence - 2)  # trim trailing silence, keep 2 frames
        payloads, voiced_ms, t_start = self._turn[:keep], self._voiced * self.frame_ms, self._t_start
        forced = self._forced
        self.reset()
        if cut:  # a monologue goes on: the next turn starts at once
            self._turn, self._t_start, self._forced = [], t_end, forced
        # a push-to-talk turn needs some voice; an automatic one needs min_speech_ms of it
        min_voiced_ms = self.frame_ms if forced else max(self.frame_ms, self.min_speech_frames * self.frame_ms)
        if voiced_ms >= min_voiced_ms:
            return Closed(payloads, t_start, t_end, voiced_ms, cut)
        return Dropped(voiced_ms)


class WebRtcVad:
    """webrtcvad on 10/20/30 ms int16 frames at 8/16/32/48 kHz; never speech below
    `min_level_dbfs` (webrtcvad calls faint noise speech, such as a recording's room tone or the
    comfort noise the echo canceller adds while the assistant talks)."""

    def __init__(self, aggressiveness: int, sample_rate: int, min_level_dbfs: float | None = None) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self.sample_rate = sample_rate
        self.min_level_dbfs = min_level_dbfs

    @classmethod
    def from_config(cls, config: VadConfig, sample_rate: int = 16000) -> "WebRtcVad":
        return cls(config.aggressiveness, sample_rate, config.min_level_dbfs)

    def is_speech(self, pcm: np.ndarray) -> bool:
        if self.min_level_dbfs is not None and dbfs(pcm) < self.min_level_dbfs:
            return False
        return self._vad.is_speech(pcm.tobytes(), self.sample_rate)


class VadStage(Stage):
    """AudioFrame in, Utterance out; emits speech_start / speech_end / turn_decided events.

    `listen_gate` (half-duplex) is a callable telling whether the microphone may open or
    continue a turn now; while it says no, frames are discarded.

    `control` carries PushToTalk and Mute frames. It is read before each audio frame, so a
    key press overtakes queued audio. While push-to-talk is held the gate is overridden.

    Voice while the assistant speaks (`is_speaking`) goes to its TalkOver, which calls
    `hold_reply(held)` and `barge_in(before)` (voice.talk_over).
    """

    def __init__(self, config: VadConfig, frame_ms: int, inbox: queue.Queue, outbox: queue.Queue,
                 stop: threading.Event, bus: EventBus, turns: Turns,
                 listen_gate: Callable[[], bool] = lambda: True, auto_open: bool = True,
                 control: queue.Queue | None = None, is_speaking: Callable[[], bool] = lambda: False,
                 barge_in: Callable[..., None] = lambda before=None: None,
                 hold_reply: Callable[[bool], None] = lambda held: None) -> None:
        super().__init__("vad", inbox, outbox, stop, bus)
        self.control = control
        self.held = False  # push-to-talk is down
        self.muted = False
        self.level = LevelMeter(bus)
        self.segmenter = Segmenter.from_config(config, frame_ms, auto_open)
        self.vad = WebRtcVad.from_config(config)
        self.turns = turns
        self.listen_gate = listen_gate
        self.is_speaking = is_speaking
        self.talk_over = TalkOver(config, hold_reply, barge_in)  # voice over the reply (voice.talk_over)
        self.early_end_ms = config.early_end_ms
        self._speculative: int | None = None  # turn started at a pause, not yet decided for good
        self._pause: Paused | None = None  # where it started
        self._heard: tuple[int, str] = (0, "")  # a speculative turn's transcript, once Whisper has it
        self._ended_early = False  # it was committed before the end-of-turn window ran out
        bus.subscribe(self._on_transcript)
        self._over_reply = False  # the turn at hand began while the assistant spoke
        self.dropped = 0

    def handle(self, frame: AudioFrame) -> None:
        self._controls()
        if self.muted:
            return
        self.level.feed(frame.pcm, frame.t)
        if not self.held and not self.listen_gate():
            if self.segmenter.in_turn or self.segmenter.state != "quiet":
                self._reset()
            return
        self._outcome(self.segmenter.push(self._voiced(frame), frame, frame.t))
        if self._may_end_early():
            self._end_early()
        # (the reply to a turn ended early may play while its window runs: that turn's voice is no barge-in)
        self.talk_over.frame(self.is_speaking() and not self._ended_early, self.segmenter.in_turn,
                             self.segmenter.voiced_ms, self.segmenter.silence_ms, frame.beyond_echo)

    def _voiced(self, frame: AudioFrame) -> bool:
        """webrtcvad's answer above the level floor, but never for what the echo canceller let
        through of the assistant's own voice (voice.echo)."""
        return not frame.echo_only and self.vad.is_speech(frame.pcm)

    def finish(self) -> None:
        self._controls()
        self._outcome(self.segmenter.flush())
        self.talk_over.let_go(self.segmenter.voiced_ms)  # the input ended: nobody is left to interrupt

    def _controls(self) -> None:
        """Apply every control frame waiting: they go before the audio frame at hand."""
        while self.control is not None:
            try:
                c = self.control.get_nowait()
            except queue.Empty:
                return
            if isinstance(c, PushToTalk) and c.pressed != self.held:
                self.held = c.pressed
                self.bus.emit("push_to_talk", t=c.t, pressed=c.pressed)
                self._outcome(self.segmenter.force_open(c.t) if c.pressed else self.segmenter.force_close(c.t))
            elif isinstance(c, Mute) and c.muted != self.muted:
                self.muted = c.muted
                self._reset()
                self.bus.emit("muted", t=c.t, muted=c.muted)
                if c.muted:
                    self.bus.emit("level", t=c.t, dbfs=FLOOR_DBFS)

    def _outcome(self, outcome: Outcome) -> None:
        if isinstance(outcome, Opened):
            self._over_reply = self.is_speaking() and not self.held  # a key press interrupts by itself
            self.bus.emit("speech_start", t=outcome.t_start)
        elif isinstance(outcome, Paused):
            self._ended_early, self._pause = False, outcome
            self._speculative = self._utterance(outcome.payloads, outcome.t_start, outcome.t_end)
            self.bus.emit("speculate", self._speculative, t=outcome.t_end)
        elif isinstance(outcome, Resumed):
            self._retract()
        elif isinstance(outcome, Dropped):
            self._drop(f"too short ({outcome.voiced_ms} ms of voice)")
        elif isinstance(outcome, Closed) and self._over_reply and not self.talk_over.enough(outcome.voiced_ms):
            # begun over the assistant and too short to interrupt it: a backchannel, or its own echo
            self._drop(f"too short to interrupt ({outcome.voiced_ms} ms of voice over the reply)")
        elif isinstance(outcome, Closed):
            turn_id, ended_early = self._speculative, self._ended_early
            self._speculative, self._ended_early = None, False
            if turn_id is not None and ended_early:  # decided already: now for good
                self._finalize(turn_id)
                return
            if turn_id is None:  # no pause long enough to speculate on: transcribe now
                turn_id = self._utterance(outcome.payloads, outcome.t_start, outcome.t_end)
            self._decide(turn_id, outcome.t_start, outcome.t_end, len(outcome.payloads), cut=outcome.cut)
            self.turns.commit(turn_id)

    def _decide(self, turn_id: int, t_start: float, t_end: float, frames: int, **data) -> None:
        self.bus.emit("speech_end", turn_id, t=t_end)
        self.bus.emit("turn_decided", turn_id, speech_start=t_start,
                      audio_s=round(frames * self.segmenter.frame_ms / 1000, 3), **data)

    def _on_transcript(self, event) -> None:
        """(on the STT thread) Whisper's words for the speculative turn, for `_may_end_early`; and
        for a turn over the reply, whether it had any."""
        if event.kind == "transcript" and event.turn_id is not None:
            self._heard = (event.turn_id, event.text)
            self.talk_over.words(event.turn_id, True)
        elif event.kind == "turn_dropped" and event.turn_id is not None:
            self.talk_over.words(event.turn_id, False)

    def _may_end_early(self) -> bool:
        """The speculative turn reads as finished, is no interjection over the reply
        (INTERJECTION_WORDS), and `early_end_ms` of silence have passed."""
        return (self.early_end_ms > 0 and self._speculative is not None and not self._ended_early
                and self.segmenter.silence_ms >= self.early_end_ms
                and self._heard[0] == self._speculative and reads_finished(self._heard[1])
                and not (self._over_reply and len(self._heard[1].split()) <= INTERJECTION_WORDS))

    def _end_early(self) -> None:
        """Commit the turn now, not when the end-of-turn window has run out: its reply may
        start. Until the window has passed the user can still take it back by speaking on."""
        turn_id, pause = self._speculative, self._pause
        self._ended_early = True
        log.info("turn %d ends after %d ms of silence: %r reads as finished", turn_id,
                 self.segmenter.silence_ms, self._heard[1])
        self._decide(turn_id, pause.t_start, pause.t_end, len(pause.payloads), cut=False,
                     early_ms=self.segmenter.silence_ms)
        self.turns.commit(turn_id, final=False)

    def _reset(self) -> None:
        """Forget the turn in progress (muted, or the half-duplex gate closed); a turn only
        speculated on is taken back, one ended early is final."""
        self.segmenter.reset()
        self.talk_over.let_go(0)
        if self._ended_early:
            self._finalize(self._speculative)
        else:
            self._retract()
        self._speculative, self._ended_early = None, False

    def _finalize(self, turn_id: int) -> None:
        """A turn ended early can no longer be taken back."""
        self.turns.commit(turn_id)
        self.bus.emit("turn_final", turn_id)

    def _drop(self, reason: str) -> None:
        log.info("voice dropped: %s", reason)  # (-v) a lost question shows here
        self._retract()
        self.dropped += 1
        self.bus.emit("turn_dropped", text=reason)

    def _utterance(self, frames: list[AudioFrame], t_start: float, t_end: float) -> int:
        turn_id = self.turns.next_id()
        if self._over_reply:
            self.talk_over.utterance(turn_id)
        self.emit(Utterance(turn_id, np.concatenate([f.pcm for f in frames]), frames[0].sample_rate,
                            t_start, t_end, time.monotonic(), over_reply=self._over_reply))
        return turn_id

    def _retract(self) -> None:
        """The user went on speaking: the speculative turn's work is thrown away."""
        if self._speculative is not None:
            if self._ended_early:
                log.info("turn %d: the user spoke on after its early end; taken back", self._speculative)
            self.turns.cancel(self._speculative)
            self.turns.done(self._speculative)
            self.bus.emit("turn_retracted", self._speculative)
            self._speculative, self._ended_early = None, False
