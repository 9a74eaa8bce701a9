"""Ctrl-C and SIGTERM: every thread joined within 2 s (else the exit code is 1 and the
stuck stages are named), exit 0; a second Ctrl-C leaves at once with 130."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from voice.capture import read_audio

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def long_session(synth_question, tmp_path_factory):
    """A question, then a minute of silence: replayed at real-time pace it keeps the assistant running."""
    path = tmp_path_factory.mktemp("shutdown") / "session.wav"
    pcm = read_audio(synth_question("What is the capital of France?"))
    soundfile.write(str(path), np.concatenate([pcm, np.zeros(60 * 16000, np.int16)]), 16000)
    return path


def start(session: Path, tmp_path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "voice", "--input", str(session), "--output",
                             str(tmp_path / "out.wav")], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    for line in proc.stdout:  # a whole turn has gone through every stage: all threads are busy or waiting
        if line.startswith("assistant"):
            return proc
    raise AssertionError(f"no reply before the output ended: {proc.stderr.read()}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_every_thread_and_exits_0(signum, long_session, tmp_path):
    proc = start(long_session, tmp_path)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "still running" not in stderr and "Traceback" not in stderr, stderr


HUNG_SHUTDOWN = """
import threading, time
from voice.cli import _install_signals
stop = threading.Event()
_install_signals(stop)
print("ready", flush=True)
stop.wait()
print("stopping", flush=True)
time.sleep(60)  # a shutdown that hangs
"""


def test_a_second_ctrl_c_forces_the_exit():
    """The signal handlers of the command line, in a process whose shutdown hangs."""
    proc = subprocess.Popen([sys.executable, "-c", HUNG_SHUTDOWN], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    assert proc.stdout.readline().strip() == "stopping"  # the first Ctrl-C asks the app to stop
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
