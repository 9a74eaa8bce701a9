"""The supervisor: no stage may die or hang silently.

A stage catches errors around each item (voice/stage.py), so its thread only dies of
something worse (a BaseException, a bug outside `handle`). The assistant would then be
deaf or mute while looking alive; the supervisor notices within `interval_s`, says which
stage died and why in one line, and stops the whole app (the command line exits with 1).
A stage busy on one item for longer than `stuck_s` is reported once per item; it is not
killed (Python threads cannot be), but the user knows why nothing happens.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Sequence

from .stage import EventBus

log = logging.getLogger(__name__)


class Supervisor(threading.Thread):
    def __init__(self, stages: Sequence[threading.Thread], stop: threading.Event, bus: EventBus,
                 interval_s: float = 0.5, stuck_s: float = 60.0) -> None:
        super().__init__(name="supervisor", daemon=True)
        self.stages, self.stop, self.bus = list(stages), stop, bus
        self.interval_s, self.stuck_s = interval_s, stuck_s
        self.failure: str | None = None  # why the supervisor stopped the app
        self._reported_busy: dict[str, float] = {}  # stage -> busy_since already reported

    def run(self) -> None:
        while not self.stop.wait(self.interval_s):
            self.check()

    def check(self) -> None:
        for stage in self.stages:
            if stage.ident is not None and not stage.is_alive():
                self._check_dead(stage)
            else:
                self._check_busy(stage)

    def _check_dead(self, stage: threading.Thread) -> None:
        died = getattr(stage, "died", None)
        if died is None or self.failure is not None:
            return  # ended normally (input drained), or already reported
        self.failure = f"the {stage.name} stage died ({type(died).__name__}: {died}); stopping the assistant"
        log.error("%s", self.failure)
        self.bus.emit("error", text=self.failure, stage=stage.name)
        self.stop.set()

    def _check_busy(self, stage: threading.Thread) -> None:
        since = getattr(stage, "busy_since", None)
        if since is None or self._reported_busy.get(stage.name) == since:
            return
        busy_s = time.monotonic() - since
        if busy_s > self.stuck_s:
            self._reported_busy[stage.name] = since
            text = f"the {stage.name} stage has been busy on one item for {busy_s:.0f} s"
            log.warning("%s", text)
            self.bus.emit("error", text=text, stage=stage.name)
