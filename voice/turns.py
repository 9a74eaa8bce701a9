"""Turn ids and their life: open, committed, cancelled, done. Shared by the stages.

A turn may start speculatively (at a short pause, before the end-of-turn window has run
out): its transcript and reply are prepared, but playback waits until it is committed.
If the user goes on speaking it is cancelled instead, and every stage drops its frames.
A turn that reads as finished is committed before the window has run out ("early"): its
reply may play, but it is final only once the window has passed, and what cannot be taken
back (a skill setting a timer) waits for that. Barge-in cancels the turns in flight in the
same way.
"""

from __future__ import annotations

import itertools
import threading


class Turns:
    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._cancel: dict[int, threading.Event] = {}
        self._cancelled: set[int] = set()  # kept after done(): late frames of a cancelled turn are dropped
        self._committed: set[int] = set()
        self._final: set[int] = set()  # committed, and the user can no longer take it back
        self._open: set[int] = set()
        self._cond = threading.Condition()

    def next_id(self) -> int:
        with self._cond:
            turn_id = next(self._ids)
            self._open.add(turn_id)
            return turn_id

    def cancel_event(self, turn_id: int) -> threading.Event:
        """Set once the turn is cancelled, also when that happened before anyone asked."""
        with self._cond:
            event = self._cancel.setdefault(turn_id, threading.Event())
            if turn_id in self._cancelled:
                event.set()
            return event

    def cancel(self, turn_id: int) -> None:
        with self._cond:
            self._cancel.setdefault(turn_id, threading.Event()).set()
            self._cancelled.add(turn_id)
            self._cond.notify_all()

    def cancel_open(self, before: int | None = None) -> list[int]:
        """Cancel every turn not yet done (barge-in), or those before `before`; returns their ids."""
        with self._cond:
            ids = sorted(i for i in self._open if before is None or i < before)
            for turn_id in ids:
                self._cancel.setdefault(turn_id, threading.Event()).set()
                self._cancelled.add(turn_id)
            self._cond.notify_all()
            return ids

    def commit(self, turn_id: int, final: bool = True) -> None:
        """Its reply may play; `final=False`: the user may still take it back by speaking on."""
        with self._cond:
            if turn_id not in self._open:  # done already: its reply has been and gone
                return
            self._committed.add(turn_id)
            if final:
                self._final.add(turn_id)
            self._cond.notify_all()

    def done(self, turn_id: int) -> None:
        """The turn's reply has ended (or it was dropped): forget its state, but not a cancellation."""
        with self._cond:
            self._open.discard(turn_id)
            self._committed.discard(turn_id)
            self._final.discard(turn_id)
            self._cancel.pop(turn_id, None)

    def is_cancelled(self, turn_id: int) -> bool:
        with self._cond:
            return self._is_cancelled_locked(turn_id)

    def is_retracted(self, turn_id: int) -> bool:
        """A speculative turn the user talked on from: nobody will hear its reply."""
        with self._cond:
            return self._is_cancelled_locked(turn_id) and turn_id not in self._committed

    def is_committed(self, turn_id: int) -> bool:
        with self._cond:
            return turn_id in self._committed

    def wait_committed(self, turn_id: int, stop: threading.Event, final: bool = False, poll_s: float = 0.05) -> bool:
        """Block until the turn is committed (with `final`, for good) (True), or cancelled or stopped (False)."""
        with self._cond:
            while not stop.is_set():
                if turn_id in (self._final if final else self._committed):
                    return not self._is_cancelled_locked(turn_id)
                if self._is_cancelled_locked(turn_id):
                    return False
                self._cond.wait(poll_s)
            return False

    def _is_cancelled_locked(self, turn_id: int) -> bool:
        return turn_id in self._cancelled
