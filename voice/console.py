"""What the terminal shows: `you:` and `assistant:` lines, and errors in one line each."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from .frames import Event


class ConsolePrinter:
    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self._lock = threading.Lock()
        self._skill: dict[int | None, str] = {}  # turn -> the skill that answers it
        self._heard: dict[int, str] = {}  # speculative turn -> transcript, printed once the turn is decided for good
        self._decided: set[int] = set()
        self._early: set[int] = set()  # ended early: the user may still speak on, and then it was no turn

    def __call__(self, event: Event) -> None:
        line = None
        if event.turn_id in self._early and event.kind in ("turn_final", "playback_start", "reply_done",
                                                           "interrupted"):
            # final, or answered already: the user's line goes before the assistant's
            self._early.discard(event.turn_id)
            self._print(self._decide(event.turn_id))
        if event.kind == "transcript":  # a speculative turn's words wait until the turn is decided
            if event.turn_id in self._decided or event.turn_id is None:
                line = f"you: {event.text}"
            else:
                self._heard[event.turn_id] = event.text
        elif event.kind == "turn_decided" and "early_ms" in event.data:
            self._early.add(event.turn_id)
        elif event.kind == "turn_decided":
            line = self._decide(event.turn_id)
        elif event.kind in ("turn_retracted", "turn_dropped"):
            self._heard.pop(event.turn_id, None)
            self._decided.discard(event.turn_id)
            self._early.discard(event.turn_id)
        elif event.kind in ("skill", "announcement"):
            self._skill[event.turn_id] = event.data.get("skill", "")
        elif event.kind == "reply_done":
            skill = self._skill.pop(event.turn_id, "")
            self._decided.discard(event.turn_id)
            who = f"assistant [{skill}]" if skill else "assistant"
            text = event.text
            if event.data.get("interrupted"):  # the reply as written; the line before says what was heard
                written = event.data.get("written") or text
                text = f"{' '.join(written.split())} [interrupted]" if written else ""
            line = f"{who}: {text}" if text else f"{who}: (no reply)"
        elif event.kind == "interrupted":
            line = f"(interrupted after: {heard_as_shown(event)!r})"
        elif event.kind == "error":
            line = f"error: {event.text}"
        elif event.kind == "device":
            line = event.text
        self._print(line)

    def _decide(self, turn_id: int) -> str | None:
        """The user's line of a turn now decided, or None until its words are known."""
        if turn_id in self._heard:
            return f"you: {self._heard.pop(turn_id)}"
        self._decided.add(turn_id)
        return None

    def _print(self, line: str | None) -> None:
        if line is not None:
            with self._lock:
                print(line, file=self.out, flush=True)


def heard_as_shown(event) -> str:
    """The words of a reply heard before an interruption, "..." where it broke off mid-sentence."""
    return event.text + ("..." if event.data.get("cut") else "")
