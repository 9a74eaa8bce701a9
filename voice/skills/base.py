"""What a skill is: a name, a line for "what can you do", and an answer to the requests it takes.

A skill sees the canonical text of a transcript (see `text.canonical`) and either declines
(None) or returns a SkillReply: words to say, whether the turn belongs in the conversation
history, and an action. The action is run only once the turn is certain (a turn the pipeline
starts on speculation may still be taken back), so a retracted "set a timer" sets none.
Actions reach the assistant through the SkillContext the skill was made with: `announce`
speaks unprompted (a timer that ends), `interrupt` stops the assistant's voice at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, ClassVar, Protocol


@dataclass(frozen=True)
class SkillReply:
    text: str  # what to say; "" says nothing
    remember: bool = True  # keep the turn in the conversation the LLM sees
    action: Callable[[], None] | None = None  # what the skill does, run once the turn is certain
    skill: str = ""  # filled in by the router: which skill answered


def _local_now() -> datetime:
    return datetime.now().astimezone()


@dataclass
class SkillContext:
    """What skills may do besides replying; the pipeline fills in the real actions."""

    announce: Callable[[str, str], None] = lambda text, skill: None  # speak unasked: (text, skill name)
    interrupt: Callable[[], None] = lambda: None  # stop speaking now, drop what is queued
    now: Callable[[], datetime] = _local_now  # aware local time
    last_reply: Callable[[], str] = lambda: ""  # the assistant's previous reply
    capabilities: Callable[[], list[str]] = field(default=lambda: [])  # each skill's description


class Skill(Protocol):
    name: str
    description: str  # completes "I can ...", e.g. "tell you the time and the date"

    def answer(self, text: str) -> SkillReply | None:
        """A reply if `text` (canonical) is a request for this skill, else None."""
        ...

    def close(self) -> None:
        """Release threads or timers; called when the pipeline stops."""
        ...


class PatternSkill:
    """A skill whose requests are whole-utterance regular expressions over the canonical text."""

    name: ClassVar[str]
    description: ClassVar[str]
    patterns: ClassVar[tuple[re.Pattern, ...]]

    def __init__(self, context: SkillContext) -> None:
        self.context = context

    def answer(self, text: str) -> SkillReply | None:
        for pattern in self.patterns:
            match = pattern.fullmatch(text)
            reply = self.reply(match) if match else None
            if reply is not None:
                return reply
        return None

    def reply(self, match: re.Match) -> SkillReply | None:  # pragma: no cover - abstract
        """The reply to a matched request, or None to decline after all (the next pattern is tried)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


def patterns(*regexes: str) -> tuple[re.Pattern, ...]:
    return tuple(re.compile(r) for r in regexes)
