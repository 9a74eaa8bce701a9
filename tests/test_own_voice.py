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
    assert not own.echoes("the largest ocean", 1.0), "nothing said yet"
    for text in SAID:
        own(Event("sentence", 1, 0.0, text))
    assert not own.echoes("the largest ocean", 1.0), "said, but never played"
    own(Event("playback_start", 1, 0.5))
    assert own.echoes(heard, 1.0) == echo


def test_only_the_reply_sounding_when_the_turn_began_is_its_echo():
    """An earlier reply's words are no echo: after a reply about Germany, the e2e's "What about
    Germany?" over the next reply is the user's ("germany", and "what", "about" close to its "that",
    "but", made it the assistant's own when every recent sentence counted). Over the reply about
    Germany itself, or over one that began after the turn did, it reads as the echo."""
    own = OwnWords()
    replies = {4: "Germany is a European country, but it's actually a member of the European Union.",
               5: "That is approximately 24 hours, so a week has 7 days."}
    for turn, (t, text) in zip(replies, [(1.0, replies[4]), (10.0, replies[5])]):
        own(Event("sentence", turn, t - 0.2, text))
        own(Event("playback_start", turn, t))
    heard = "What about Germany?"
    assert not own.echoes(heard, 11.0)
    assert own.echoes(heard, 2.0), "begun over the reply about Germany"
    assert own.echoes(heard, 0.5), "begun before it, which then played"
