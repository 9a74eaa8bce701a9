"""The thread that every pipeline stage is: take a frame, handle it, pass results on.

Stopping has two forms (see pipecat's EndFrame/CancelFrame): the shared `stop` event
cancels at once; the END sentinel drains in order, each stage forwarding it after all
that came before. Errors are caught around one item, logged with their traceback and
reported as an `error` event; the stage keeps running.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import threading
import time
from typing import Any, Callable

from .frames import END, Event

log = logging.getLogger(__name__)

POLL_S = 0.05  # how often a stage blocked on a full outbox looks at the stop event
# How long a stage waits on an empty inbox before it looks at the stop event again; `unblock` ends the
# wait at once. (Waking every 50 ms, the four stages that wait between turns took ~1 % of a core of
# idle listening on an AVX2 AMD host.)
WAIT_S = 1.0
_WAKE = object()  # put by `unblock`: the stage looks at the stop event


class EventBus:
    """Fan-out of pipeline events to subscribers (console, metrics, a window).

    Subscribers are called on the emitting stage's thread and must return quickly.
    """

    def __init__(self) -> None:
        self._subscribers: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, fn: Callable[[Event], None]) -> None:
        with self._lock:
            self._subscribers.append(fn)

    def emit(self, kind: str, turn_id: int | None = None, text: str = "", t: float | None = None, **data: Any) -> None:
        event = Event(kind, turn_id, time.monotonic() if t is None else t, text, data)
        with self._lock:
            subscribers = list(self._subscribers)
        for fn in subscribers:
            try:
                fn(event)
            except Exception:  # a broken subscriber must not take a stage down
                log.exception("event subscriber %r failed on %s", fn, kind)


def put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put on a bounded queue, giving up if `stop` is set. True if the item was queued."""
    while not stop.is_set():
        try:
            q.put(item, timeout=POLL_S)
            return True
        except queue.Full:
            continue
    return False


def name_os_thread(name: str) -> None:
    """Give the OS thread the stage's name, so `top -H` and `ps -L` show which stage uses the CPU."""
    try:
        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME (Linux)
    except (OSError, AttributeError):  # not Linux: nothing to name
        pass


class Stage(threading.Thread):
    """One pipeline stage on its own thread. Subclasses implement `handle`."""

    def __init__(self, name: str, inbox: queue.Queue, outbox: queue.Queue | None,
                 stop: threading.Event, bus: EventBus) -> None:
        super().__init__(name=name, daemon=True)
        self.inbox, self.outbox, self.stop, self.bus = inbox, outbox, stop, bus
        self.busy_since: float | None = None  # monotonic s the current item started (for the Supervisor)
        self.ended = False  # returned normally (END drained or stop set)
        self.died: BaseException | None = None  # what killed the thread, if something did

    def handle(self, item: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def finish(self) -> None:
        """Called once when END arrives, before it is forwarded."""

    def emit(self, item: Any) -> None:
        if self.outbox is not None:
            put(self.outbox, item, self.stop)

    def run(self) -> None:
        name_os_thread(self.name)
        log.debug("%s started", self.name)
        try:
            self._loop()
        except BaseException as e:  # beyond per-item errors: the Supervisor sees `died` and stops the app
            log.critical("%s stage died", self.name, exc_info=True)
            self.died = e
            return
        self.ended = True
        log.debug("%s stopped", self.name)

    def unblock(self) -> None:
        """After `stop` is set: a stage waiting on its inbox stops waiting (and ends)."""
        try:
            self.inbox.put_nowait(_WAKE)
        except queue.Full:  # not waiting, then
            pass

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                item = self.inbox.get(timeout=WAIT_S)
            except queue.Empty:
                continue
            if self.stop.is_set():  # woken, or stopped while it waited: what came is not handled
                break
            if item is END:
                self._guarded(self.finish, None)
                self.emit(END)
                break
            self.busy_since = time.monotonic()
            self._guarded(self.handle, item)
            self.busy_since = None

    def _guarded(self, fn: Callable, item: Any) -> None:
        try:
            fn(item) if item is not None else fn()
        except Exception as e:
            turn_id = getattr(item, "turn_id", None)
            log.exception("%s failed on %s", self.name, type(item).__name__ if item is not None else "finish")
            self.bus.emit("error", turn_id, f"{self.name} failed: {e}", stage=self.name)
            self.failed(item, e)

    def failed(self, item: Any, error: Exception) -> None:
        """Called after `handle(item)` raised: a stage that would leave a turn open closes it here."""
