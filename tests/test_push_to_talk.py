"""Push-to-talk for real: the assistant under Xvfb, F9 pressed with xdotool, recorded speech as the microphone.

Two recorded sentences are replayed at real-time pace with a gap between them. F9 is held
(pynput's X11 backend, the one desktop users get) around the first one only: the first is
transcribed and answered, the second - voice with no key - never opens a turn.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import wer
from lines import Lines
from xserver import xvfb  # noqa: F401  (the fixture)

REPO = Path(__file__).resolve().parents[1]
RATE = 22050
LEAD_S, GAP_S, TAIL_S = 3.0, 3.0, 2.0

pytestmark = pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("xdotool")),
                                reason="needs Xvfb and xdotool (Debian packages xvfb, xdotool)")


def test_speech_counts_only_while_the_key_is_held(xvfb, shared_clips, tmp_path):
    clips = {c["file"]: c for c in shared_clips}
    held, free = clips["LJ001-0004.wav"], clips["LJ001-0006.wav"]
    pcm_held, _ = soundfile.read(str(held["path"]), dtype="float32")
    pcm_free, _ = soundfile.read(str(free["path"]), dtype="float32")
    silence = lambda s: np.zeros(int(s * RATE), np.float32)  # noqa: E731
    wav = tmp_path / "two_sentences.wav"
    soundfile.write(str(wav), np.concatenate([silence(LEAD_S), pcm_held, silence(GAP_S), pcm_free, silence(TAIL_S)]),
                    RATE, subtype="PCM_16")
    held_from, held_to = LEAD_S, LEAD_S + len(pcm_held) / RATE

    env = dict(os.environ, DISPLAY=xvfb, PYTHONUNBUFFERED="1")
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("XDG_SESSION_TYPE", None)
    proc = subprocess.Popen([sys.executable, "-m", "voice", "--input", str(wav), "--output", str(tmp_path / "out.wav"),
                             "--push-to-talk", "F9", "--hotkey-backend", "pynput"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err = Lines(proc.stderr)
    try:
        t0, _ = err.wait_for("push-to-talk: F9 via pynput", timeout=120)  # printed as the replay starts
        time.sleep(max(0.0, t0 + held_from - 0.3 - time.monotonic()))
        subprocess.run(["xdotool", "keydown", "F9"], env=env, check=True)
        time.sleep(max(0.0, t0 + held_to + 0.4 - time.monotonic()))
        subprocess.run(["xdotool", "keyup", "F9"], env=env, check=True)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.seen
    you = [line[len("you: "):] for line in out.splitlines() if line.startswith("you: ")]
    assert len(you) == 1, out
    assert wer(held["transcript"], you[0]) <= 0.35, you[0]
    assert len([line for line in out.splitlines() if line.startswith("assistant: ")]) == 1, out
