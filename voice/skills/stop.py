""""Stop" / "be quiet": the assistant stops speaking at once and says nothing."""

from __future__ import annotations

import re

from .base import PatternSkill, SkillReply, patterns


class StopSkill(PatternSkill):
    name = "stop"
    description = "stop talking when you say stop"
    patterns = patterns(
        r"(?:(?:ok|okay|oh|no|please|just|hey) )*(?:stop|halt|pause|silence|hush|shush|shh+|enough|cancel)"
        r"(?: it| that| talking| speaking| now| please| there)*",
        r"(?:(?:please|just) )?(?:be quiet|quiet|shut up|be silent|keep quiet|stop it|that is enough|that will do)"
        r"(?: please| now)*",
    )

    def reply(self, match: re.Match) -> SkillReply:
        return SkillReply("", remember=False, action=self.context.interrupt)
