"""Wake phrase mode: only transcripts that start with the phrase (say "hey computer") are answered.

Matching is done on the transcript, after normalising case and punctuation, so Whisper's
"Hey, computer." matches; a near spelling ("Hay computer") passes a similarity bound, and
at the very start of a transcript the first word may be misheard altogether, as Whisper
tiny.en hears "Hey computer" as "A computer". The phrase may come after a word or two of
noise ("Oh, hey computer, ..."). It is stripped before the text goes to the LLM.

The phrase alone opens a follow-up window: the next turn that starts within `follow_up_s`
of the end of it needs no phrase. The VAD may hand the STT a speculative part of a turn
before the whole; both start at the same moment, so both pass.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

_WORD = re.compile(r"[A-Za-z0-9']+")
SIMILARITY = 0.8  # difflib ratio a spoken phrase needs against the configured one ...
WORD_SIMILARITY = 0.6  # ... and each of its words against the configured word
MAX_LEAD_WORDS = 2  # words before the phrase that are tolerated ("oh", "okay")
MISHEARD_LEN = 3  # letters of a word at the start that may stand for the phrase's first word ("a", "hay")


def _norm(word: str) -> str:
    return word.lower().replace("'", "")


@dataclass(frozen=True)
class WakeResult:
    """What to do with a transcript in wake phrase mode."""

    action: str  # "answer": send `text` to the LLM; "wake": the phrase alone; "drop": no phrase
    text: str  # the request without the phrase ("" for wake and drop)
    reason: str = ""  # for drop and wake: a sentence for the turn_dropped event


class WakePhrase:
    def __init__(self, phrase: str, follow_up_s: float = 8.0) -> None:
        self.words = [_norm(w) for w in _WORD.findall(phrase)]
        if not self.words:
            raise ValueError(f"the wake phrase {phrase!r} has no words")
        self.phrase = phrase
        self.follow_up_s = follow_up_s
        self._follow_up_until = float("-inf")

    def find(self, text: str) -> tuple[int, int] | None:
        """The character span of the phrase in `text`, or None."""
        words = list(_WORD.finditer(text))
        n = len(self.words)
        for start in range(0, min(MAX_LEAD_WORDS, len(words) - 1) + 1):
            for size in (n, n - 1, n + 1):  # "hey computer" heard as "heycomputer" or "hey com puter"
                if size < 1 or start + size > len(words):
                    continue
                said = [_norm(m.group()) for m in words[start:start + size]]
                if "".join(said) == "".join(self.words) or (size == n and self._similar(said)):
                    return words[start].start(), words[start + size - 1].end()
        if n > 1 and len(words) >= n and len(words[0].group()) <= MISHEARD_LEN and \
                [_norm(m.group()) for m in words[1:n]] == self.words[1:]:
            return words[0].start(), words[n - 1].end()  # "A computer": the first word misheard
        return None

    def _similar(self, said: list[str]) -> bool:
        """Near spellings ("hay computer"): each word alike and the whole closer still."""
        if any(difflib.SequenceMatcher(None, a, b).ratio() < WORD_SIMILARITY for a, b in zip(said, self.words)):
            return False
        return difflib.SequenceMatcher(None, " ".join(said), " ".join(self.words)).ratio() >= SIMILARITY

    def check(self, text: str, t_start: float, t_end: float) -> WakeResult:
        """Decide about one transcript of speech from `t_start` to `t_end` (monotonic seconds)."""
        span = self.find(text)
        if span is None:
            if t_start <= self._follow_up_until:
                self._follow_up_until = t_start  # used: only this turn (or a part of it, again) passes
                return WakeResult("answer", text.strip())
            return WakeResult("drop", "", f"no wake phrase ({self.phrase!r})")
        rest = text[span[1]:].lstrip(" ,.!?;:-").strip()
        if not _WORD.search(rest):
            self._follow_up_until = t_end + self.follow_up_s
            return WakeResult("wake", "", f"wake phrase alone: listening for {self.follow_up_s:g} s")
        self._follow_up_until = float("-inf")
        return WakeResult("answer", rest[0].upper() + rest[1:])
