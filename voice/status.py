"""Terminal mode's live status line on stderr: the state, the microphone level, the push-to-talk key.

It redraws one line in place (carriage return, erase line) and only when stderr is a
terminal. Lines on stdout (`you:`, `assistant:`) must not land inside it: subscribe
`clear_for_output` before the console printer and the StatusLine itself after it, so the
line is erased before such a line is printed and drawn again below it.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from .frames import Event
from .level import FLOOR_DBFS
from .state import StateTracker

PRINTED = ("transcript", "reply_done", "interrupted", "error")  # the kinds ConsolePrinter prints
REDRAW_S = 0.1  # the level alone redraws at most this often
BAR = " ▁▂▃▄▅▆▇█"


def meter(dbfs: float, width: int = 8) -> str:
    """A text bar for a level from -60 dBFS (empty) to 0 (full)."""
    fill = max(0.0, min(1.0, (dbfs + 60.0) / 60.0)) * width
    full = int(fill)
    part = BAR[int((fill - full) * (len(BAR) - 1))] if full < width else ""
    return ("█" * full + part).ljust(width)


class StatusLine:
    def __init__(self, hint: str = "", out: TextIO = sys.stderr) -> None:
        self.out, self.hint = out, hint
        self.tracker = StateTracker()
        self.dbfs = FLOOR_DBFS
        self._last_draw = 0.0
        self._lock = threading.Lock()

    def clear_for_output(self, event: Event) -> None:
        if event.kind in PRINTED:
            with self._lock:
                self.out.write("\r\x1b[2K")
                self.out.flush()

    def __call__(self, event: Event) -> None:
        changed = self.tracker.update(event)
        if event.kind == "level":
            self.dbfs = event.data.get("dbfs", FLOOR_DBFS)
        now = time.monotonic()
        if changed or event.kind in PRINTED or now - self._last_draw >= REDRAW_S:
            self._last_draw = now
            self.draw()

    def line(self) -> str:
        parts = [f"● {self.tracker.state:<11}", f"mic {meter(self.dbfs)}"]
        if self.hint:
            parts.append(self.hint)
        return " │ ".join(parts)

    def draw(self) -> None:
        with self._lock:
            self.out.write("\r\x1b[2K" + self.line())
            self.out.flush()

    def close(self) -> None:
        with self._lock:
            self.out.write("\r\x1b[2K")
            self.out.flush()
