"""Does what the user said so far read as a finished turn?

The end-of-turn window (`vad.end_silence_ms`) has to be long enough for a pause in the middle
of a sentence. When the speculative transcript of the turn reads as finished ("What is the
largest ocean?"), the VAD stage ends the turn after a shorter silence (`vad.early_end_ms`),
the way LiveKit's and pipecat's turn detectors do with a model; here Whisper's punctuation
and the last word decide. A transcript that trails off ("Tell me about the.", "um", "and...")
waits for the whole window. If the user speaks on within it, the turn is taken back all the
same, so a wrong guess costs a little work, not the user's words.
"""

from __future__ import annotations

import re

# a sentence does not end on these, whatever punctuation Whisper gave it
_CONJUNCTIONS = {"and", "or", "but", "so", "because", "if", "then", "than", "that", "which", "who", "whose",
                 "where", "when", "while", "although", "though", "unless", "until", "whether", "nor"}
_DETERMINERS = {"a", "an", "the", "my", "your", "his", "her", "its", "our", "their", "this", "these", "those",
                "some", "any", "every", "each", "no"}
# (live, an interruption's "Oh," was heard as "Oh." at its first pause and the turn ended there; the
# user spoke on, so it was taken back, but its line was shown and counted as a turn of its own)
_FILLERS = {"um", "uh", "er", "erm", "hmm", "mm", "uhm", "ah", "oh", "like", "well"}
# ... nor on a preposition, except in a question ("What are you thinking of?")
_PREPOSITIONS = {"of", "to", "for", "with", "in", "on", "at", "by", "from", "about", "into", "as", "between",
                 "after", "before", "over", "under", "through", "onto", "toward", "towards", "without"}
_DANGLING = _CONJUNCTIONS | _DETERMINERS | _FILLERS


def reads_finished(text: str) -> bool:
    """True if `text` (a Whisper transcript) ends like a finished sentence."""
    text = text.strip()
    if not text or text.endswith(("...", "…", ",", "-", "—", ";", ":")) or text[-1] not in ".?!":
        return False
    words = re.findall(r"[a-z']+", text.lower())
    if not words:
        return False
    last = words[-1]
    return last not in _DANGLING and (text.endswith("?") or last not in _PREPOSITIONS)
