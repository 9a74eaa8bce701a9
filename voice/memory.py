"""Memory: the conversation kept in SQLite, so the assistant still knows it after a restart.

The database lives in the user's data directory (platformdirs; on Linux
`~/.local/share/voice-assistant/memory.sqlite3`) unless `[memory] path` names another file.
It is private: the file is created with mode 0600 in a directory of mode 0700. Each turn is
stored as it is added to the Conversation; on start the most recent turns are loaded back
(the LLM then sees as many as fit its context, oldest dropped first).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

from platformdirs import user_data_dir

from . import APP_NAME
from .config import MemoryConfig
from .history import Turn

log = logging.getLogger(__name__)

DB_NAME = "memory.sqlite3"
LOAD_TURNS = 200  # more than any context window here holds; older rows stay on disk until --forget

_SCHEMA = """
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,            -- Unix time, seconds
    user TEXT NOT NULL,
    assistant TEXT NOT NULL,
    interrupted INTEGER NOT NULL DEFAULT 0
)
"""


class MemoryStoreError(RuntimeError):
    """The memory database cannot be opened, read or written; the message names the file."""


def memory_path(config: MemoryConfig) -> Path:
    """The configured database file, or the default one in the user's data directory."""
    if config.path:
        return Path(config.path).expanduser()
    return Path(user_data_dir(APP_NAME, appauthor=False)) / DB_NAME


class MemoryStore:
    """One SQLite file of turns. Thread-safe: the LLM stage appends while others may read."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # create the file private before SQLite opens it, so it is never readable by others
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            os.chmod(self.path, 0o600)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise MemoryStoreError(f"cannot open the memory database {self.path}: {e}") from e
        self._lock = threading.Lock()
        log.info("memory: %s", self.path)

    def load(self, limit: int = LOAD_TURNS) -> list[Turn]:
        """The most recent `limit` turns, oldest first."""
        try:
            with self._lock:
                rows = self._db.execute("SELECT user, assistant, interrupted FROM turns ORDER BY id DESC LIMIT ?",
                                        (limit,)).fetchall()
        except sqlite3.Error as e:
            raise MemoryStoreError(f"cannot read the memory database {self.path}: {e}") from e
        return [Turn(user, assistant, bool(interrupted)) for user, assistant, interrupted in reversed(rows)]

    def append(self, turn: Turn) -> None:
        """Store one turn; a failure is logged (the conversation goes on in memory)."""
        try:
            with self._lock:
                self._db.execute("INSERT INTO turns (created, user, assistant, interrupted) VALUES (?, ?, ?, ?)",
                                 (time.time(), turn.user, turn.assistant, int(turn.interrupted)))
        except sqlite3.Error as e:
            log.error("cannot store a turn in %s: %s", self.path, e)

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM turns").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def forget(path: str | Path) -> bool:
    """Delete the stored conversation (the database and its journal files). True if there was one."""
    path = Path(path)
    found = False
    for file in (path, path.with_name(path.name + "-journal"), path.with_name(path.name + "-wal"),
                 path.with_name(path.name + "-shm")):
        try:
            file.unlink()
            found = True
        except FileNotFoundError:
            pass
    return found
