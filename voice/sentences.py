"""Streamed LLM tokens to speakable sentences.

A sentence ends at . ! ? or a line break followed by more text; abbreviations, decimals
and initials do not end one. The first piece of a reply may be cut early (`first_clause_words`)
so speech starts sooner: at a comma, or before a word that opens a phrase ("in", "that",
"because", ...) once the sentence has gone on past it; the listener waits for that piece to be
written and synthesized, and Piper leaves a comma's pause (~230 ms) between two pieces. A
sentence longer than `max_words` words is spoken in pieces, cut at a comma, else before a word
that opens a clause ("and", "which", ...), else after `max_words` words: Piper holds on to
~20 MB of memory per second of the longest piece it has spoken, and the listener waits for a
whole piece to be synthesized. Markdown, emoji and list bullets that a small model likes to
write are removed, since they are read aloud badly.
"""

from __future__ import annotations

import re

_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "no", "approx", "u.s"}
_END = re.compile(r"([.!?]+[\"')\]]*|\n+)(\s+)")
# a word's . ! ? that the model has just written ends a piece at once, without waiting for the
# next token's space: one token sooner (~18 ms on an Intel host, ~40 on an AVX2 AMD one); so does a
# comma (; :) where a piece may end (_CLAUSE). After a digit it may be a decimal point or a
# thousands separator ("3.5", "1,000"): that waits.
_WORD_END_NOW = re.compile(r"(?<=[^\W\d_])[.!?]+$")
_MARKUP = re.compile(r"[*_`#>|~]+|^\s*[-•]\s+|^\s*\d+\.\s+(?=\D)", re.M)
_EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F\u200D]+")
_CLAUSE = re.compile(r"[,;:](\s+|(?<=[^\W\d_][,;:])$)")
_WORD = re.compile(r"\S+(?=\s)")  # a word the model has finished writing
_OPENS_CLAUSE = {"and", "but", "or", "so", "because", "which", "that", "who", "where", "when", "while", "as", "if"}
# where a reply's first piece may end: not before "and", "or", "as", "of", "to", which as often join
# two words ("mysterious | and beautiful", "type | of tea") as open a phrase
_OPENS_PHRASE = (_OPENS_CLAUSE - {"and", "or", "as"}) | {"in", "on", "at", "for", "with", "from", "by", "about",
                                                         "into", "during", "after", "before", "since", "until"}
MIN_PIECE_WORDS = 3  # no piece of a long sentence is shorter
LOOKAHEAD_WORDS = 4  # a sentence is cut only once it has run this far past `max_words`: most end before
PHRASE_LOOKAHEAD_WORDS = 2  # the first piece ends before a phrase only once this many words of it are written


def clean_for_speech(text: str) -> str:
    """Text as Piper should read it; "" where nothing is left to say (Piper reads a lone "!" as a
    second of sound)."""
    text = re.sub(r"\s+", " ", _EMOJI.sub("", _MARKUP.sub("", text))).strip()
    return text if re.search(r"[^\W_]", text) else ""


def _is_boundary(text: str, end: int) -> bool:
    """Does the punctuation ending at `end` close a sentence?"""
    if text[end - 1] == "\n":
        return True
    word = re.search(r"(\S+)$", text[:end])
    stem = word.group(1).rstrip(".!?\"')]").lower() if word else ""
    if text[end - 1] == "." and (stem in _ABBREVIATIONS or (len(stem) == 1 and stem.isalpha())):
        return False
    return True


class SentenceSplitter:
    def __init__(self, first_clause_words: int = 0, max_words: int = 0) -> None:
        self.first_clause_words = first_clause_words
        self.max_words = max_words
        self._buf = ""
        self._emitted = 0

    def push(self, token: str) -> list[str]:
        """Add a token; return the sentences it completed (already cleaned, never empty)."""
        self._buf += token
        out = []
        while True:
            cut = self._find_cut()
            if cut is None:
                break
            piece, self._buf = self._buf[:cut], self._buf[cut:]
            piece = clean_for_speech(piece)
            if piece:
                out.append(piece)
                self._emitted += 1
        return out

    def flush(self) -> list[str]:
        piece, self._buf = clean_for_speech(self._buf), ""
        if piece:
            self._emitted += 1
            return [piece]
        return []

    def _find_cut(self) -> int | None:
        for m in _END.finditer(self._buf):
            if _is_boundary(self._buf, m.end(1)):
                return m.end()
        if _WORD_END_NOW.search(self._buf) and _is_boundary(self._buf, len(self._buf)):
            return len(self._buf)
        if self._emitted == 0 and self.first_clause_words:
            commas = self._commas(self.first_clause_words)
            cut = commas[0] if commas else self._phrase_cut()
            if cut is not None:
                return cut
        if self.max_words:
            return self._long_cut()
        return None

    def _long_cut(self) -> int | None:
        """Where a sentence that runs past `max_words` (+ LOOKAHEAD_WORDS) words is cut: after its
        last comma, else before its last clause-opening word, else after `max_words` words."""
        words = list(_WORD.finditer(self._buf))
        if len(words) < self.max_words + LOOKAHEAD_WORDS:
            return None
        commas = self._commas(MIN_PIECE_WORDS)
        if commas:
            return commas[-1]
        opens = [w.start() for w in words[MIN_PIECE_WORDS:] if w.group().lower() in _OPENS_CLAUSE]
        return opens[-1] if opens else words[self.max_words].start()

    def _phrase_cut(self) -> int | None:
        """Before the first word that opens a phrase with `first_clause_words` words before it,
        once PHRASE_LOOKAHEAD_WORDS of the phrase are written and the sentence has not ended:
        a short sentence ("A week is seven days.") stays whole."""
        words = list(_WORD.finditer(self._buf))
        for i in range(self.first_clause_words, len(words) - PHRASE_LOOKAHEAD_WORDS + 1):
            if words[i].group().lower() in _OPENS_PHRASE:
                return words[i].start()
        return None

    def _commas(self, min_words: int) -> list[int]:
        """Where a piece may end: after a comma, semicolon or colon with `min_words` words before it."""
        return [m.end() for m in _CLAUSE.finditer(self._buf) if len(self._buf[:m.start()].split()) >= min_words]
