"""Memory on its own: the SQLite store is private and ordered; a restored conversation fits the context."""

import os
import stat

from voice.history import Conversation, Turn
from voice.memory import MemoryStore, forget


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_store_keeps_turns_in_order_in_a_private_file(tmp_path):
    path = tmp_path / "new" / "memory.sqlite3"
    store = MemoryStore(path)
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    turns = [Turn(f"question {i}", f"answer {i}") for i in range(5)] + [Turn("tell me", "Once upon", True)]
    for turn in turns:
        store.append(turn)
    store.close()
    again = MemoryStore(path)
    assert again.load() == turns
    assert again.load(limit=2) == turns[-2:], "the most recent, oldest first"
    again.close()
    assert mode(path) == 0o600
    assert forget(path) and not path.exists()
    assert not forget(path), "nothing left to forget"


def test_conversation_restored_from_memory_fits_the_context(tmp_path):
    store = MemoryStore(tmp_path / "m.sqlite3")
    words = lambda text: len(text.split())  # noqa: E731 - a token counter for the budget
    first = Conversation("system", words, 1000, on_add=store.append)
    for i in range(40):
        first.add(Turn(f"my number is {i}", f"noted {i}"))
    restarted = Conversation("system", words, 60, turns=store.load())
    messages = restarted.messages("what is my number")
    assert messages[0]["role"] == "system" and messages[-1]["content"] == "what is my number"
    assert messages[-3]["content"] == "my number is 39", "the newest turns are kept"
    assert all(m["content"] != "my number is 0" for m in messages), "the oldest are dropped to fit"
