"""Is what the user "said" over the reply only the assistant's own words, come back through the room?

The echo canceller lets a phrase of the reply through now and then (voice.echo); Whisper then
transcribes the assistant's own words ("as approximately." while it said "which is approximately
..."), often misheard ("and post-refotion." for "and post-reflection"). A turn begun over the reply
whose words are nearly all among the words the assistant has just said is its echo, and is not
answered. A user who talks over the reply says something else: "Stop. What about Germany?".
"""

from __future__ import annotations

import collections
import difflib
import re
import threading

SENTENCES = 8  # the reply's latest sentences: what the room may still be echoing
SIMILAR = 0.75  # a word heard is one of the reply's when this close to it (difflib ratio): Whisper mishears echo
OWN_SHARE = 0.7  # ... and a transcript is the assistant's when this share of its words are
MIN_WORDS = 2  # a single word ("Yes.", "Stop.") is the user's: too little to tell


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))


class OwnWords:
    """Subscribes to the event bus: keeps what the assistant said lately, from `sentence` events."""

    def __init__(self) -> None:
        self._said: collections.deque[list[str]] = collections.deque(maxlen=SENTENCES)
        self._lock = threading.Lock()

    def __call__(self, event) -> None:
        if event.kind == "sentence" and event.text:
            with self._lock:
                self._said.append(words(event.text))

    def echoes(self, text: str) -> bool:
        """Whether `text` (a transcript) is made of the assistant's latest words."""
        heard = words(text)
        if len(heard) < MIN_WORDS:
            return False
        with self._lock:
            said = {w for sentence in self._said for w in sentence}
        if not said:
            return False
        own = sum(1 for w in heard if w in said or difflib.get_close_matches(w, said, n=1, cutoff=SIMILAR))
        return own >= OWN_SHARE * len(heard)
