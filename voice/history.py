"""The conversation the LLM sees: a system prompt and the recent turns that fit its context."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Iterable


@dataclass(frozen=True)
class Turn:
    user: str
    assistant: str
    interrupted: bool = False  # the reply was cut off; `assistant` holds only what was heard


class Conversation:
    """Thread-safe history. `messages()` drops the oldest turns first to fit `budget` tokens.

    It drops them in steps: when the history no longer fits, down to half the room, so that
    the prompt begins the same way for the many turns after. llama.cpp then reads only the new
    messages; dropping one turn at a time changed the beginning on every turn, and it read all
    ~1900 tokens again each time (~4 s on 2 cores)."""

    # said on the user's side: a small model imitates whatever marks its own messages
    INTERRUPTED_NOTE = "(I interrupted you.) "

    def __init__(self, system_prompt: str, count_tokens: Callable[[str], int], budget_tokens: int,
                 turns: Iterable[Turn] = (), on_add: Callable[[Turn], None] | None = None) -> None:
        self.system_prompt = system_prompt
        self.count_tokens = count_tokens
        self.budget = budget_tokens
        self.turns: list[Turn] = list(turns)  # earlier turns, e.g. restored from voice.memory
        self.on_add = on_add  # called with each new turn (voice.memory stores it)
        self._first = 0  # the oldest turn the model still sees
        self._lock = threading.Lock()

    def add(self, turn: Turn) -> None:
        with self._lock:
            self.turns.append(turn)
        if self.on_add is not None:
            self.on_add(turn)

    def clear(self) -> None:
        with self._lock:
            self.turns.clear()
            self._first = 0

    # What a chat template adds: per message its role header and end-of-turn markers, where
    # the text's own tokens may also merge differently (SmolLM2's ChatML measured 5-6), and
    # once the assistant header that the reply follows. Under-counting overflows the context.
    MESSAGE_OVERHEAD_TOKENS = 6
    PROMPT_OVERHEAD_TOKENS = 8

    def _cost(self, role: str, text: str) -> int:
        return self.count_tokens(text) + self.MESSAGE_OVERHEAD_TOKENS

    def messages(self, user_text: str) -> list[dict]:
        """System prompt, then as many recent turns as fit, then the new user message. A reply
        that was cut off holds only what was heard, and the user message after it says so."""
        with self._lock:
            turns, first = list(self.turns), self._first

        def user(i: int, text: str) -> str:
            return self.INTERRUPTED_NOTE + text if i > 0 and turns[i - 1].interrupted else text
        user_text = user(len(turns), user_text)
        used = self.PROMPT_OVERHEAD_TOKENS + self._cost("system", self.system_prompt) + self._cost("user", user_text)
        seen = [(user(i, turns[i].user), turns[i].assistant) for i in range(first, len(turns))]
        costs = [self._cost("user", said) + self._cost("assistant", reply) for said, reply in seen]
        if used + sum(costs) > self.budget:
            room = max(0, self.budget - used)
            while len(costs) > 1 and sum(costs) > room // 2:  # down to half the room ...
                costs.pop(0)
                seen.pop(0)
            if costs and costs[0] > room:  # ... keeping the newest turn if it fits at all
                costs.pop(0)
                seen.pop(0)
            with self._lock:
                self._first = max(self._first, len(turns) - len(seen))
        kept = [{"role": role, "content": text} for said, reply in seen
                for role, text in (("user", said), ("assistant", reply))]
        return [{"role": "system", "content": self.system_prompt}, *kept, {"role": "user", "content": user_text}]
