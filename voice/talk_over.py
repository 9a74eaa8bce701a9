"""Voice while the assistant speaks: hold the reply, interrupt it, or let it play on.

Fed once per microphone frame by the VAD stage with what its segmenter knows of the turn at hand,
it calls `hold_reply(True/False)` and `barge_in(before)` (cancel every turn before that id; None:
every turn). Its rules:

- From `hold_ms` of voice the reply is held (silent at once, its echo gone, so the canceller no
  longer takes the user's voice down with it), once a voiced frame was louder than the assistant's
  echo can be (`beyond_echo`): what the canceller lets through of the assistant is not, so it seldom
  holds the reply (e2e on PulseAudio with room echo: 1-12 holds in five replies without that test).
- From `barge_in_ms` of such voice the reply is interrupted.
- Voice that stops short of that (a cough, a click, an "mm") lets the held reply play on from where
  it was after `resume_ms` of silence; its voice no longer counts toward an interruption.
- A reply that ends while held (the hold came at its last block) is no longer held, and the voice
  still counts: it is a turn like any other. (Let go at `resume_ms` instead, it was discounted, and
  a question the user asked as the reply ended was dropped as "too short to interrupt": e2e with
  room echo, 1 of 15 interruptions, no reply. The hold also silenced the next reply after its
  first block.)
- Voice none of which was louder than the echo (it may be what the canceller let through of the
  assistant: e2e with room echo, 0-3 barge-ins on its own voice in five replies, each 160-180 ms of
  such voice; every interruption by the e2e's user had louder frames) holds the reply at
  UNSURE_VOICE_FACTOR x `barge_in_ms`, and Whisper's words decide: words (not the assistant's own,
  see voice.own_voice) interrupt it, a turn dropped lets it play on.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from .config import VadConfig

log = logging.getLogger(__name__)

UNSURE_VOICE_FACTOR = 2  # voice none of which was louder than the echo holds the reply at this x barge_in_ms
WORDS_WAIT_S = 5.0  # a held reply plays on if Whisper has not decided this long after the turn ended


class TalkOver:
    def __init__(self, config: VadConfig, hold_reply: Callable[[bool], None],
                 barge_in: Callable[..., None]) -> None:
        self.hold_reply, self.barge_in = hold_reply, barge_in
        self.hold_ms, self.resume_ms, self.barge_in_ms = config.hold_ms, config.resume_ms, config.barge_in_ms
        self.holding = False  # the reply is held for voice over it that may be an interruption
        self._let_go_ms = 0  # voice of the turn at hand that held the reply and was let go: no longer counts
        self._beyond_echo = False  # the turn at hand has voice louder than the assistant's echo can be
        self._in_turn = False
        self._ids: list[int] = []  # utterances of the turn at hand (or the last) sent to Whisper
        self._words: dict[int, bool] = {}  # of those: Whisper heard words (True), or the turn was dropped
        self._awaiting = False  # the reply is held until Whisper's words for the turn at hand decide
        self._ended_at = 0.0  # monotonic s the turn at hand ended, while awaiting
        self._lock = threading.Lock()  # `words` comes from the STT thread

    def frame(self, over_reply: bool, in_turn: bool, voiced_ms: int, silence_ms: int, beyond_echo: bool) -> None:
        """One microphone frame. `over_reply`: the assistant speaks and the turn at hand may interrupt
        it; `voiced_ms`, `silence_ms`: the turn's voice so far and its silence since the last voiced
        frame; `beyond_echo`: this frame was louder than the echo can be."""
        if in_turn and not self._in_turn and not self._awaiting:  # a new turn
            with self._lock:
                self._ids, self._words = [], {}
        self._in_turn = in_turn
        if not in_turn:
            self._let_go_ms, self._beyond_echo = 0, False
        elif silence_ms == 0 and beyond_echo:  # a voiced frame
            self._beyond_echo = True
        voiced = voiced_ms - self._let_go_ms
        if over_reply and self._beyond_echo and voiced >= self.barge_in_ms:
            log.info("barge-in: %d ms of voice while the assistant speaks", voiced)
            self.holding = self._awaiting = False  # the interruption lets go of the hold
            self.barge_in()
        elif self._awaiting:
            self._await_words(in_turn)
        elif over_reply and not self._beyond_echo and voiced >= self.needs_ms():
            log.info("reply held: %d ms of voice, none louder than the echo: Whisper decides", voiced)
            self._hold()
            self._awaiting = True
        elif over_reply and 0 < self.hold_ms <= voiced and silence_ms == 0 and self._beyond_echo and not self.holding:
            log.info("reply held: %d ms of voice while the assistant speaks", voiced)
            self._hold()
        elif self.holding and not over_reply:  # the held reply is over: its voice is a turn like any other
            log.info("reply over while held: %d ms of voice", voiced)
            self._release()
        elif self.holding and (not in_turn or silence_ms >= self.resume_ms):
            self.let_go(voiced_ms)

    def enough(self, voiced_ms: int) -> bool:
        """Whether a turn over the reply with this much voice interrupts it (or, unsure, goes to
        Whisper); one with less is dropped: a backchannel, or the assistant's own echo."""
        return voiced_ms - self._let_go_ms >= self.needs_ms()

    def needs_ms(self) -> int:
        """Voice of the turn at hand that interrupts the reply (or, unsure, holds it for Whisper)."""
        return self.barge_in_ms if self._beyond_echo else UNSURE_VOICE_FACTOR * self.barge_in_ms

    def utterance(self, turn_id: int) -> None:
        """An utterance of the turn at hand went to Whisper."""
        with self._lock:
            self._ids.append(turn_id)

    def words(self, turn_id: int, heard: bool) -> None:
        """(on the STT thread) Whisper heard words for `turn_id`, or the turn was dropped."""
        with self._lock:
            if turn_id in self._ids:
                self._words[turn_id] = heard

    def let_go(self, voiced_ms: int) -> None:
        """The voice that held the reply was no interruption: it plays on."""
        if self.holding:
            log.info("reply resumed: %d ms of voice, no interruption", voiced_ms - self._let_go_ms)
            self._let_go_ms = voiced_ms  # a cough and another are no interruption together
            self._release()

    def _release(self) -> None:
        self.holding = self._awaiting = False
        self.hold_reply(False)

    def _hold(self) -> None:
        if not self.holding:
            self.holding = True
            self.hold_reply(True)

    def _await_words(self, in_turn: bool) -> None:
        """Held for unsure voice: Whisper's words for the turn interrupt the reply; the turn dropped
        (the assistant's own words, no speech) lets it play on."""
        with self._lock:
            heard = any(self._words.values())
            last = self._words.get(self._ids[-1]) if self._ids else None  # the turn's last utterance
            first = self._ids[0] if self._ids else None
        if heard:
            log.info("barge-in: Whisper heard words over the reply")
            self.holding = self._awaiting = False
            self.barge_in(first)  # what came before the user's turn; the turn itself goes on
        elif in_turn:
            self._ended_at = time.monotonic()
        elif last is False or time.monotonic() - self._ended_at > WORDS_WAIT_S:
            self.let_go(0)
