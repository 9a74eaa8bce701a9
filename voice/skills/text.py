"""Transcripts to the canonical text that skills match against.

Whisper writes the same question many ways: "What's twelve times twelve?", "what is 12 x 12",
"Um, could you tell me what time it is, please?". `canonical()` lower-cases, spells every
number in digits (text2num, "one and a half" -> "1 and a half"), drops punctuation that is not
part of a number or an operator, removes filler and politeness words, and undoes Whisper's
habit of looping on a short clip, so a skill's pattern only has to describe the request itself.
"""

from __future__ import annotations

import re

from text_to_num import alpha2digit

# words that carry nothing anywhere in an utterance
_FILLER_WORDS = re.compile(r"\b(?:u+m+|u+h+|e+r+m*|h+m+|a+h+|mm+)\b")
# polite or conversational openings, removed (repeatedly) from the start
_LEADING = re.compile(
    r"^(?:(?:hey|hi|hello|ok|okay|so|well|oh|now|and|alright|all right|right|sorry|excuse me)\b"
    r"|(?:please|kindly)\b"
    r"|(?:(?:could|can|would|will) you(?: please)?(?: just)?)\b(?! do\b)"
    r"|(?:(?:please )?tell me|let me know|do you know|i (?:want|need|would like|'d like) to know)\b"
    r"|(?:i (?:want|need|would like|'d like) (?:you )?to)\b"
    r"|(?:assistant|computer)\b)\s*")
_TRAILING = re.compile(r"\s*\b(?:please|thanks|thank you|for me|now|right now|from now)$")
_SPACES = re.compile(r"\s+")


def canonical(text: str) -> str:
    """The request in `text`, lower case, numbers in digits, without fillers and politeness."""
    text = text.lower().replace("\u2019", "'")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 1,000 -> 1000
    text = re.sub(r"(?<=[a-z0-9])-(?=[a-z])", " ", text)  # twenty-three, five-minute, 5-second
    text = re.sub(r"\b(what|how|where|who|that|it)'s\b", r"\1 is", text)
    # text2num reads "second" as the ordinal 2nd; a unit is what people mean here
    text = re.sub(r"\bseconds?\b", "sec", text)
    text = re.sub(r"\bminutes?\b", "min", text)
    text = alpha2digit(text, "en", threshold=0)
    text = re.sub(r"(?<=\d)\s*\.\s*(?!\d)", " ", text)  # a sentence's full stop after a number
    text = re.sub(r"[^a-z0-9.'+\-*/×÷^%() ]", " ", text)  # keep digits, decimals and operators
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)
    text = _FILLER_WORDS.sub(" ", text)
    text = _SPACES.sub(" ", text).strip()
    while True:
        shorter = _TRAILING.sub("", _LEADING.sub("", text)).strip()
        if shorter == text:
            return collapse_repeats(text)
        text = shorter


def collapse_repeats(text: str) -> str:
    """Whisper's loop on a short clip, "repeat that repeat that repeat", as said once: "repeat that"."""
    words = text.split()
    for period in range(1, len(words) // 2 + 1):
        if all(words[i] == words[i % period] for i in range(len(words))):
            return " ".join(words[:period])
    return text
