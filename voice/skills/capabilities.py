""""What can you do": the list of skills, from each skill's own description."""

from __future__ import annotations

import re

from .base import PatternSkill, SkillReply, patterns


class CapabilitiesSkill(PatternSkill):
    name = "capabilities"
    description = "tell you what I can do"
    patterns = patterns(
        r"what (?:can|could) (?:you|i ask you to) do(?: for me)?|what (?:are|is) your (?:skills|abilities|commands)"
        r"|what (?:can|could) i (?:ask|say)(?: you)?|what do you do|help(?: me)?|list (?:your )?skills"
        r"|what are you able to do|what skills do you have|what commands do you (?:know|understand)",
    )

    def reply(self, match: re.Match) -> SkillReply:
        things = [d for d in self.context.capabilities() if d != self.description]
        listed = ", ".join(things[:-1]) + (", and " if len(things) > 1 else "") + things[-1]
        return SkillReply(f"I can {listed}. Anything else goes to my language model.")
