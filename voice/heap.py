"""The process's heap: what was freed, handed back to the system."""

from __future__ import annotations

import ctypes


def release_freed_memory() -> bool:
    """Hand the heap's free pages back to the system (glibc's malloc_trim over every thread's
    arena); False where there is no glibc. Each stage's thread allocates in an arena of its own
    and glibc keeps what was freed there: scripts/soak, RSS after 25 turns 509-595 MB over seven
    runs with this between turns (median 559), 578-686 over five without (median 604)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    libc.malloc_trim(0)
    return True
