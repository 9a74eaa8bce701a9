"""Timers: set by voice, asked about, cancelled; each speaks up by itself when it ends.

Durations are read from canonical text ("5 min", "1 and a half min", "a min and a half",
"half an hour", "1 hour 20 min", "90 sec"). A running timer is a `threading.Timer` that calls
the context's `announce` when it fires, so the announcement comes even while nobody speaks.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from dataclasses import dataclass

from .base import PatternSkill, SkillContext, SkillReply, patterns

log = logging.getLogger(__name__)

MAX_SECONDS = 24 * 3600
_UNIT_SECONDS = {"sec": 1, "secs": 1, "s": 1, "min": 60, "mins": 60, "hour": 3600, "hours": 3600, "hr": 3600,
                 "hrs": 3600}
_AMOUNT = r"\d+(?:\.\d+)?(?: 1/2)?|an?|half an?|a couple of|a quarter of an?|quarter of an?|three quarters of an?"
_PART = re.compile(rf"(?P<amount>{_AMOUNT})(?P<half> and a half)? ?(?P<unit>{'|'.join(_UNIT_SECONDS)})\b"
                   r"(?P<half_after> and a half)?")
_JOINER = re.compile(r"[\s,]*(?:and)?[\s,]*")

_SET, _LEFT, _CANCEL = patterns(
    r"(?:(?:set|start|make|create|put on|add|give me)(?: me)? )?(?:a |an |1 |the |another )?(?:new )?timer"
    r" (?:for|of|on|at) (?P<d>.+)"
    r"|(?:(?:set|start|make|create|put on|add|give me)(?: me)? )?(?:a |an |1 |another )??(?P<d2>.+?) timer"
    r"|(?:remind me|wake me(?: up)?|alert me|ping me|let me know) in (?P<d3>.+)"
    r"|(?:count ?down|timer)(?: for| from)? (?P<d4>.+)",
    r"how (?:long|much (?:time|longer))(?: is| do i have| have i got)?(?: there)?(?: left| remaining| to go)?"
    r"(?: on (?:the |my |that )?timers?)?"
    r"|(?:what is )?(?:the )?time (?:left|remaining)(?: on (?:the |my |that )?timers?)?"
    r"|(?:how is|check) (?:the |my )?timers?(?: doing| going)?|timer status|is (?:the|my) timer (?:still )?running",
    r"(?:cancel|stop|delete|remove|clear|end|turn off|kill|reset|forget)(?: the| my| that| this| all| all the| all my)?"
    r" timers?|never ?mind (?:the |my |that )?timers?",
)


def parse_duration(text: str) -> float | None:
    """Seconds in `text` if all of it is a duration ("1 hour and 20 min"), else None."""
    total, pos = 0.0, 0
    while True:
        match = _PART.match(text, pos)
        if not match:
            return None
        half = bool(match.group("half") or match.group("half_after"))
        total += _amount(match.group("amount"), half) * _UNIT_SECONDS[match.group("unit")]
        pos = _JOINER.match(text, match.end()).end()
        if pos >= len(text):
            return total


def _amount(word: str, and_a_half: bool) -> float:
    if word.endswith(" 1/2"):
        value = float(word[:-4]) + 0.5
    elif word[0].isdigit():
        value = float(word)
    else:
        value = {"a": 1, "an": 1, "a couple of": 2}.get(word)
        if value is None:
            value = 0.75 if word.startswith("three") else 0.5 if word.startswith("half") else 0.25
    return value + (0.5 if and_a_half else 0.0)


def describe(seconds: float) -> str:
    """90 -> "1 minute and 30 seconds"."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in ((hours, "hour"), (minutes, "minute"),
                                                                    (secs, "second")) if n]
    if not parts:
        return "0 seconds"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


@dataclass
class _Running:
    seconds: float  # as set
    due: float  # monotonic s
    thread: threading.Timer


class TimerSkill(PatternSkill):
    name = "timer"
    description = "set timers"
    patterns = (_SET, _LEFT, _CANCEL)

    def __init__(self, context: SkillContext) -> None:
        super().__init__(context)
        self._timers: dict[int, _Running] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def reply(self, match: re.Match) -> SkillReply | None:
        if match.re is _SET:
            spoken = next(g for g in match.groups() if g is not None)
            # "a 5 min timer" and "a min and a half timer": the article may or may not be the amount
            seconds = parse_duration(spoken) or parse_duration(re.sub(r"^(?:a|an|1|another) ", "", spoken))
            return None if seconds is None else self.start(seconds)
        if match.re is _LEFT:
            return SkillReply(self.remaining())
        with self._lock:
            running = len(self._timers)
        if not running:
            return SkillReply("There is no timer to cancel.")
        return SkillReply("Timer cancelled." if running == 1 else f"All {running} timers cancelled.",
                          action=self.cancel)

    def start(self, seconds: float) -> SkillReply:
        if seconds < 1:
            return SkillReply("That timer would end before it starts.")
        if seconds > MAX_SECONDS:
            return SkillReply("I can set timers for up to 24 hours.")
        return SkillReply(f"Timer set for {describe(seconds)}.", action=lambda: self.run(seconds))

    def run(self, seconds: float) -> None:
        timer_id = next(self._ids)
        thread = threading.Timer(seconds, self._ring, (timer_id,))
        thread.daemon = True
        thread.name = f"timer-{timer_id}"
        with self._lock:
            self._timers[timer_id] = _Running(seconds, time.monotonic() + seconds, thread)
        thread.start()
        log.info("timer %d set for %.1f s", timer_id, seconds)

    def _ring(self, timer_id: int) -> None:
        with self._lock:
            timer = self._timers.pop(timer_id, None)
        if timer is not None:
            log.info("timer %d done", timer_id)
            self.context.announce(f"Time's up! Your timer for {describe(timer.seconds)} is done.", self.name)

    def remaining(self) -> str:
        now = time.monotonic()
        with self._lock:
            timers = sorted(self._timers.values(), key=lambda t: t.due)
        if not timers:
            return "There is no timer running."
        if len(timers) == 1:
            return f"You have {describe(timers[0].due - now)} left on your timer."
        return f"You have {len(timers)} timers. The next one ends in {describe(timers[0].due - now)}."

    def cancel(self) -> None:
        with self._lock:
            timers, self._timers = list(self._timers.values()), {}
        for timer in timers:
            timer.thread.cancel()

    def close(self) -> None:
        self.cancel()
