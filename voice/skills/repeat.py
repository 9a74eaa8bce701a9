""""Repeat that": the assistant's last reply again."""

from __future__ import annotations

import re

from .base import PatternSkill, SkillReply, patterns


class RepeatSkill(PatternSkill):
    name = "repeat"
    description = "repeat what I just said"
    patterns = patterns(
        r"(?:(?:sorry|pardon|what|excuse me) )*(?:repeat|say) (?:that|it|this)(?: again)?(?: one more time)?"
        r"|(?:sorry |pardon )?(?:come again|say again|repeat|again|pardon(?: me)?|what did you (?:just )?say"
        r"|(?:i )?(?:did not|didn't) (?:hear|catch|get) (?:that|it|you)|once more|say that one more time)",
    )

    def reply(self, match: re.Match) -> SkillReply:
        last = self.context.last_reply()
        if not last:
            return SkillReply("I haven't said anything yet.", remember=False)
        return SkillReply(last, remember=False)
