"""What the assistant is doing, derived from pipeline events: shown by the window and the status line."""

from __future__ import annotations

from .frames import Event

LISTENING, HEARING, THINKING, SPEAKING, MUTED = "listening", "hearing you", "thinking", "speaking", "muted"

# event kind -> the state it starts
_NEXT = {
    "speech_start": HEARING,
    "turn_decided": THINKING,
    "transcript": THINKING,
    "playback_start": SPEAKING,
    "turn_retracted": HEARING,  # a speculative turn: the user went on speaking
    "turn_dropped": LISTENING,
    "reply_done": LISTENING,
    "interrupted": LISTENING,
}


class StateTracker:
    """Feed it every event; `state` is one of the five names above."""

    def __init__(self) -> None:
        self.activity = LISTENING
        self.muted = False

    @property
    def state(self) -> str:
        return MUTED if self.muted and self.activity == LISTENING else self.activity

    def update(self, event: Event) -> bool:
        """Apply one event; True if the state changed."""
        before = self.state
        if event.kind == "muted":
            self.muted = bool(event.data.get("muted"))
        elif event.kind == "turn_dropped" and self.activity == SPEAKING:
            pass  # a noise while a reply plays does not end the reply
        elif event.kind in _NEXT:
            self.activity = _NEXT[event.kind]
        return self.state != before
