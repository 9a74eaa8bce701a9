"""A virtual X server (Xvfb) for tests of the global hotkey and the real window."""

from __future__ import annotations

import os
import subprocess

import pytest


@pytest.fixture(scope="module")
def xvfb():
    """A virtual X server; yields its DISPLAY value."""
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as f:
        number = f.readline().strip()
    assert number, "Xvfb did not start"
    yield f":{number}"
    proc.terminate()
    proc.wait(5)
