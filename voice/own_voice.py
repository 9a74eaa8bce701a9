"""Is what the user "said" over the reply only the assistant's own words, come back through the room?

The echo canceller lets a phrase of the reply through now and then (voice.echo); Whisper then
transcribes the assistant's own words ("as approximately." while it said "which is approximately
..."), often misheard ("and post-refotion." for "and post-reflection"). A turn begun over the reply
whose words are nearly all among the words of that reply is its echo, and is not answered. A user
who talks over the reply says something else: "Stop. What about Germany?".

Only the reply that was sounding when the turn began counts (and any begun during it): the echo is
of what the speaker plays. The words of the last few sentences of any reply, as before, made the
e2e's "What about Germany?" the assistant's own after an earlier reply about Germany ("germany",
"what" ~ "that", "about" ~ "but"): 3 of 5 interruptions went unanswered in one run with room echo.
"""

from __future__ import annotations

import collections
import difflib
import re
import threading

SENTENCES = 8  # a reply's latest sentences: what the room may still be echoing
REPLIES = 4  # replies remembered
SIMILAR = 0.75  # a word heard is one of the reply's when this close to it (difflib ratio): Whisper mishears echo
OWN_SHARE = 0.7  # ... and a transcript is the assistant's when this share of its words are
MIN_WORDS = 2  # a single word ("Yes.", "Stop.") is the user's: too little to tell


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))


class OwnWords:
    """Subscribes to the event bus: keeps each reply's sentences (`sentence` events) and when each
    began to play (`playback_start`)."""

    def __init__(self) -> None:
        self._said: dict[int, collections.deque[list[str]]] = {}  # turn -> its reply's latest sentences
        self._started: collections.deque[tuple[float, int]] = collections.deque(maxlen=REPLIES)  # (t, turn)
        self._lock = threading.Lock()

    def __call__(self, event) -> None:
        if event.turn_id is None:
            return
        with self._lock:
            if event.kind == "sentence" and event.text:
                if event.turn_id not in self._said and len(self._said) >= 2 * REPLIES:
                    del self._said[min(self._said)]  # the oldest turn's (many never play: speculation)
                self._said.setdefault(event.turn_id, collections.deque(maxlen=SENTENCES)).append(words(event.text))
            elif event.kind == "playback_start":
                self._started.append((event.t, event.turn_id))

    def echoes(self, text: str, since: float) -> bool:
        """Whether `text` (a transcript of a turn begun at monotonic `since`) is made of the words
        of the reply sounding then, or of one begun after."""
        heard = words(text)
        if len(heard) < MIN_WORDS:
            return False
        with self._lock:
            before = [turn for t, turn in self._started if t <= since][-1:]
            turns = before + [turn for t, turn in self._started if t > since]
            said = {w for turn in turns for sentence in self._said.get(turn, ()) for w in sentence}
        if not said:
            return False
        own = sum(1 for w in heard if w in said or difflib.get_close_matches(w, said, n=1, cutoff=SIMILAR))
        return own >= OWN_SHARE * len(heard)
