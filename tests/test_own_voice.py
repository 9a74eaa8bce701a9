"""Telling the assistant's own words, come back through the room, from a user's (voice.own_voice),
on transcripts seen in live runs with room echo."""

import pytest

from voice.frames import Event
from voice.own_voice import OwnWords

SAID = ["The largest ocean is the Pacific Ocean, which is approximately 63 million square miles.",
        "It is known for its diverse marine life and post-reflection culture."]


@pytest.mark.parametrize("heard, echo", [
    ("and post-refotion.", True),  # Whisper's mishearing of the leak
    ("and post-reflection culture.", True),
    ("which is approximately", True),
    ("Stop. What about Germany?", False),  # the e2e's interruption, as Whisper heard it in those runs
    ("Oh, what about Germany?", False),
    ("Well, it's an out to Germany.", False),
    ("Pacific.", False),  # one word: too little to tell
])
def test_own_words(heard, echo):
    own = OwnWords()
    assert not own.echoes("the largest ocean"), "nothing said yet"
    for text in SAID:
        own(Event("sentence", 1, 0.0, text))
    assert own.echoes(heard) == echo
