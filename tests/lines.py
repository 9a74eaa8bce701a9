"""Reading a child process's output line by line while a test drives it."""

from __future__ import annotations

import queue
import threading
import time
from typing import IO


class Lines:
    """Collects the lines of `stream` on a thread; `wait_for` blocks until one matches."""

    def __init__(self, stream: IO[str]) -> None:
        self._q: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._q.put((time.monotonic(), line.rstrip("\n")))
        self._q.put((time.monotonic(), None))

    def wait_for(self, text: str, timeout: float = 60, start: bool = True) -> tuple[float, str]:
        """(monotonic s when it was read, the line) of the next line starting with `text`
        (or containing it, with start=False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                t, line = self._q.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                break
            self.seen.append(line)
            if line.startswith(text) if start else text in line:
                return t, line
        raise AssertionError(f"no line with {text!r}; got: {self.seen}")

    def rest(self, timeout: float = 5) -> list[str]:
        """Every line up to the end of the stream (the child has exited)."""
        while True:
            _, line = self._q.get(timeout=timeout)
            if line is None:
                return self.seen
            self.seen.append(line)
