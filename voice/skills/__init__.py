"""Skills: exact, instant answers for what people ask most, tried before the language model.

The registry is `SKILLS`, in the order they are tried. To add a skill, write a module with a
class that has `name`, `description` and `answer(text) -> SkillReply | None` (most subclass
`PatternSkill`), add it to `SKILLS`, and add a test that speaks a request to it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Callable

from ..frames import Event
from .arithmetic import ArithmeticSkill
from .base import PatternSkill, Skill, SkillContext, SkillReply
from .capabilities import CapabilitiesSkill
from .clock import ClockSkill
from .repeat import RepeatSkill
from .stop import StopSkill
from .text import canonical
from .timer import TimerSkill

__all__ = ["SKILLS", "PatternSkill", "Skill", "SkillContext", "SkillReply", "SkillRouter", "canonical"]

log = logging.getLogger(__name__)

# tried in this order, the first that answers wins ("stop the timer" is the timer's, "stop" is
# stop's); "what can you do" lists them in this order too
SKILLS: tuple[Callable[[SkillContext], Skill], ...] = (
    ClockSkill, TimerSkill, ArithmeticSkill, RepeatSkill, StopSkill, CapabilitiesSkill)


class SkillRouter:
    """Routes a transcript to the first skill that takes it; None means "ask the LLM".

    Subscribe `observe` to the pipeline's EventBus: it remembers the last reply spoken (by a
    skill, the LLM or an announcement) for "repeat that".
    """

    def __init__(self, announce: Callable[[str], None] = lambda text: None,
                 interrupt: Callable[[], None] = lambda: None,
                 skills: tuple[Callable[[SkillContext], Skill], ...] = SKILLS, **context) -> None:
        self.context = SkillContext(announce=announce, interrupt=interrupt, **context)
        self.context.last_reply = self.last_reply
        self.context.capabilities = self.capabilities
        self.skills: list[Skill] = [make(self.context) for make in skills]
        self._reply_turn: int | None = None
        self._reply: list[str] = []
        self._last = ""
        self._lock = threading.Lock()

    def route(self, transcript: str) -> SkillReply | None:
        text = canonical(transcript)
        if not text:
            return None
        for skill in self.skills:
            reply = skill.answer(text)
            if reply is not None:
                log.info("skill %s takes %r", skill.name, text)
                return replace(reply, skill=skill.name)
        return None

    def capabilities(self) -> list[str]:
        return [skill.description for skill in self.skills]

    def observe(self, event: Event) -> None:
        """EventBus subscriber: collects each reply's sentences as they are queued."""
        if event.kind != "sentence" or not event.text:
            return
        with self._lock:
            if event.turn_id != self._reply_turn:
                self._reply_turn, self._reply = event.turn_id, []
            self._reply.append(event.text)
            self._last = " ".join(self._reply)

    def last_reply(self) -> str:
        with self._lock:
            return self._last

    def close(self) -> None:
        for skill in self.skills:
            skill.close()
