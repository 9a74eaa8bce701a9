"""The window's device pickers switch the microphone while the assistant runs: a real PortAudio
microphone on a private PulseAudio server, switched from `default` to `pulse` between two questions.

The switching runs in a child process: PortAudio reads the PulseAudio address when it starts.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from conftest import wer
from lines import Lines
from pulse_server import MIC_RATE, PulseServer

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = ["What is the capital of France?", "How many legs does a spider have?"]

CHILD = r"""
import sys, threading
from voice.capture import MicrophoneSource
from voice.config import load_config
from voice.console import ConsolePrinter
from voice.devices import PORTAUDIO
from voice.pipeline import Pipeline, load_engines
from voice.playback import WavSink
from voice.switchable import SwitchableSource

config = load_config()
engines = load_engines(config)
a = config.audio
mic = SwitchableSource(MicrophoneSource(None, a.frame_ms, a.sample_rate, a.queue_frames),
                       lambda d: MicrophoneSource(d, a.frame_ms, a.sample_rate, a.queue_frames))
pipeline = Pipeline(config, engines, mic, WavSink(sys.argv[1], engines.synthesizer.sample_rate), half_duplex=True)
pipeline.bus.subscribe(ConsolePrinter())
pipeline.start()
print("listening", flush=True)
for line in sys.stdin:
    mic.switch(line.strip())
    threading.Event().wait(0.5)  # the capture thread moves over at its next frame
    print(f"switched; streams open: {sum(1 for s in PORTAUDIO._streams if s.stream is not None)}; "
          f"hook carried over: {mic._current.attentive == pipeline._attentive}", flush=True)
pipeline.stop()
"""

pytestmark = pytest.mark.skipif(not PulseServer.available(),
                                reason="pulseaudio / pulseaudio-utils not installed (Debian: pulseaudio pulseaudio-utils)")


def test_microphone_switches_while_running(synth_question, tmp_path):
    said = []
    for q in QUESTIONS:
        pcm, rate = soundfile.read(str(synth_question(q, lead_s=0.3, tail_s=0.2)), dtype="float32")
        said.append((soxr.resample(pcm, rate, MIC_RATE) * 32767).astype(np.int16))
    pulse = PulseServer(tmp_path / "pulse").start(speaker=False)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "replies.wav")], cwd=REPO, env=pulse.env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = Lines(proc.stdout)
    try:
        lines.wait_for("listening", timeout=120)
        pulse.say(said[0])
        assert wer(QUESTIONS[0], lines.wait_for("you: ")[1][5:]) <= 0.35
        lines.wait_for("assistant: ")
        proc.stdin.write("pulse\n")
        proc.stdin.flush()
        # the old device is closed; the new one is told when the pipeline needs each block at once
        assert lines.wait_for("switched")[1] == "switched; streams open: 1; hook carried over: True"
        time.sleep(0.5)
        pulse.say(said[1])
        assert wer(QUESTIONS[1], lines.wait_for("you: ")[1][5:]) <= 0.35
        lines.wait_for("assistant: ")
        proc.stdin.close()
        assert proc.wait(30) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        pulse.stop()
