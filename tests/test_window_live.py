"""The desktop app as a person launches it: a real window on an X server (Xvfb), a live microphone
(a private PulseAudio pipe source), the global F9 key pressed with xdotool while another window
could have focus, and Ctrl+Q in the window to quit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from conftest import wer
from lines import Lines
from pulse_server import MIC_RATE, PulseServer
from xserver import xvfb  # noqa: F401  (the fixture)

REPO = Path(__file__).resolve().parents[1]
QUESTION = "What is the capital of France?"

pytestmark = pytest.mark.skipif(
    not (shutil.which("Xvfb") and shutil.which("xdotool") and PulseServer.available()),
    reason="needs Xvfb, xdotool and PulseAudio (Debian: xvfb xdotool pulseaudio pulseaudio-utils)")


def test_window_with_global_key_and_live_microphone(xvfb, synth_question, tmp_path):  # noqa: F811
    pcm, rate = soundfile.read(str(synth_question(QUESTION, lead_s=0.3, tail_s=0.2)), dtype="float32")
    question = (soxr.resample(pcm, rate, MIC_RATE) * 32767).astype(np.int16)
    pulse = PulseServer(tmp_path / "pulse").start(speaker=False)
    env = dict(pulse.env(), DISPLAY=xvfb, PYTHONUNBUFFERED="1")
    for name in ("WAYLAND_DISPLAY", "XDG_SESSION_TYPE", "QT_QPA_PLATFORM"):
        env.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-m", "voice", "--push-to-talk", "F9", "--output",
                             str(tmp_path / "replies.wav")], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = Lines(proc.stdout)
    err: list[str] = []
    threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True).start()
    try:
        out.wait_for("listening", timeout=120)
        window = subprocess.run(["xdotool", "search", "--sync", "--name", "Voice assistant"], env=env,
                                capture_output=True, text=True, timeout=20).stdout.split()
        assert window, "no window on the X server"
        time.sleep(0.5)  # pynput's record context is enabled shortly after its thread starts
        pulse.say(question)  # voice without the key: ignored
        time.sleep(len(question) / MIC_RATE + 1.0)
        subprocess.run(["xdotool", "keydown", "F9"], env=env, check=True)
        pulse.say(question)
        time.sleep(len(question) / MIC_RATE + 0.4)
        subprocess.run(["xdotool", "keyup", "F9"], env=env, check=True)
        heard = out.wait_for("you: ")[1][len("you: "):]
        assert wer(QUESTION, heard) <= 0.35, heard
        assert out.wait_for("assistant: ")[1] != "assistant: (no reply)"
        subprocess.run(["xdotool", "windowfocus", window[0]], env=env, check=True)
        subprocess.run(["xdotool", "key", "ctrl+q"], env=env, check=True)
        code = proc.wait(20)
        seen = out.rest()  # everything it printed, to the end
    finally:
        if proc.poll() is None:
            proc.kill()
        pulse.stop()
    assert code == 0, err
    assert any("push-to-talk: F9 via pynput" in line for line in err), err
    assert [line for line in seen if line.startswith("you: ")] == [f"you: {heard}"], seen
    assert not any("Traceback" in line for line in err), "".join(err)
