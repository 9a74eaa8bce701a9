"""The time and the date, in the local time zone."""

from __future__ import annotations

import re
from datetime import datetime

from .base import PatternSkill, SkillReply, patterns

_TIME = r"(?:what(?: is)?|what's) (?:the )?(?:current )?time(?: is it| it is| now| right now)?(?: (?:here|please))?" \
        r"|(?:what )?time is it(?: now)?|the time|time|current time|have you got the time"
_DATE = r"(?:what(?: is)?|what's) (?:the |today's |today is )?date(?: today| is it| it is)?(?: today)?" \
        r"|what (?:day|date) is (?:it|today)(?: today)?|what is today|which day is (?:it|today)|the date|today's date" \
        r"|date|what day of the week is it"


def say_time(now: datetime) -> str:
    """3:05 PM as Piper reads it well."""
    hour = now.hour % 12 or 12
    return f"{hour}:{now.minute:02d} {'AM' if now.hour < 12 else 'PM'}"


def say_date(now: datetime) -> str:
    return f"{now:%A}, {now:%B} {now.day}, {now.year}"


class ClockSkill(PatternSkill):
    name = "clock"
    description = "tell you the time and the date"
    patterns = patterns(_TIME, _DATE)

    def reply(self, match: re.Match) -> SkillReply:
        now = self.context.now()
        if match.re is self.patterns[0]:
            return SkillReply(f"It's {say_time(now)}.")
        return SkillReply(f"Today is {say_date(now)}.")
