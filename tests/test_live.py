"""Live mode against virtual devices: a private PulseAudio server, a question said into its
microphone, the reply recorded from its speaker and transcribed with the real Whisper; then
the same with the microphone, or the speaker, unplugged and plugged in again mid-run."""

from __future__ import annotations

import contextlib
import queue
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
from pulse_server import MIC_RATE, PulseServer

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ("What is the capital of France?", "What color is the sky?", "How many days are in a week?")

pytestmark = pytest.mark.skipif(not PulseServer.available(),
                                reason="pulseaudio / pulseaudio-utils not installed (Debian: pulseaudio pulseaudio-utils)")


class Assistant:
    """`python -m voice` in live mode as a subprocess, its stdout read line by line."""

    def __init__(self, env: dict, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "voice", "--no-gui", *args], cwd=ROOT, env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr, None), daemon=True).start()

    @staticmethod
    def _read(stream, store: list, lines: queue.Queue | None) -> None:
        for line in stream:
            store.append(line.rstrip("\n"))
            if lines is not None:
                lines.put(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.proc.poll() is None, f"assistant exited ({self.proc.returncode}):\n" + "\n".join(self.stderr)
                continue
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line starting {prefix!r} within {timeout} s; stdout: {self.stdout}\n"
                             f"stderr: {self.stderr[-20:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        time.sleep(0.1)
        return self.proc.returncode


@pytest.fixture
def pulse(tmp_path):
    server = PulseServer(tmp_path / "pulse")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def questions(synth_question) -> dict[str, np.ndarray]:
    """Each question as 16 kHz int16 speech, as the microphone will hear it."""
    out = {}
    for q in QUESTIONS:
        pcm, rate = soundfile.read(str(synth_question(q, lead_s=0.3, tail_s=0.2)), dtype="float32")
        out[q] = (soxr.resample(pcm, rate, MIC_RATE) * 32767).astype(np.int16)
    return out


def ask(assistant: Assistant, pulse: PulseServer, pcm: np.ndarray, question: str) -> str:
    """Say the question; the assistant must hear it (WER bound) and answer. Returns the reply."""
    pulse.say(pcm)
    heard = assistant.wait_for("you: ")[len("you: "):]
    assert wer(question, heard) <= 0.4, (question, heard)
    reply = assistant.wait_for("assistant: ")[len("assistant: "):]
    assert reply and reply != "(no reply)"
    return reply


def reply_matches_recording(engines, recording: Path, reply: str) -> None:
    pcm, rate = soundfile.read(str(recording), dtype="float32")
    loud = np.flatnonzero(np.abs(pcm) > 0.05)
    assert len(loud), "nothing was played on the speaker"
    # only the sound: Whisper tiny tends to repeat itself into long stretches of silence
    pcm = pcm[max(0, loud[0] - rate // 5):loud[-1] + rate // 3]
    heard = engines.transcriber.transcribe(soxr.resample(pcm, rate, 16000)).text
    assert wer(reply, heard) <= 0.5, (reply, heard)


@contextlib.contextmanager
def live(pulse: PulseServer, *args: str, record: Path | None = None):
    """The assistant in live mode, listening; on leaving, it must stop cleanly (0, no traceback)."""
    assistant = Assistant(pulse.env(), *args)
    try:
        assistant.wait_for("listening")
        yield assistant
    finally:
        code = assistant.stop()
    assert code == 0, assistant.stderr
    assert not any("Traceback" in line for line in assistant.stderr), "\n".join(assistant.stderr)


@contextlib.contextmanager
def recording(pulse: PulseServer, path: Path):
    """Record the speaker; on leaving, a second more (the reply is printed when its last block
    was written, not yet heard), then stop."""
    recorder = pulse.record(path)
    try:
        yield
        time.sleep(1.0)
    finally:
        recorder.terminate()
        recorder.wait(5)


def test_live_answers_a_spoken_question(pulse, questions, engines, tmp_path):
    pulse.start(speaker=True)
    with live(pulse) as assistant, recording(pulse, tmp_path / "speaker.wav"):
        reply = ask(assistant, pulse, questions[QUESTIONS[0]], QUESTIONS[0])
    reply_matches_recording(engines, tmp_path / "speaker.wav", reply)


def test_live_microphone_unplugged_and_back(pulse, questions, tmp_path):
    # no speaker sink: with one, PulseAudio would move the stream to its monitor instead of ending it
    pulse.start(speaker=False)
    with live(pulse, "--output", str(tmp_path / "replies.wav")) as assistant:
        ask(assistant, pulse, questions[QUESTIONS[0]], QUESTIONS[0])
        pulse.unload_mic()
        assert "microphone lost" in assistant.wait_for("microphone lost", timeout=10)
        time.sleep(1.0)
        pulse.load_mic()
        assert "microphone is back" in assistant.wait_for("microphone is back", timeout=20)
        ask(assistant, pulse, questions[QUESTIONS[1]], QUESTIONS[1])


def test_live_speaker_unplugged_and_back(pulse, questions, engines, tmp_path):
    pulse.start(speaker=True)
    with live(pulse) as assistant:
        pulse.unload_speaker()
        ask(assistant, pulse, questions[QUESTIONS[0]], QUESTIONS[0])  # answered into nothing
        assert any(line.startswith("speaker lost") for line in assistant.stdout), assistant.stdout
        pulse.load_speaker()
        with recording(pulse, tmp_path / "speaker.wav"):
            reply = ask(assistant, pulse, questions[QUESTIONS[2]], QUESTIONS[2])
        assert any("speaker is back" in line for line in assistant.stdout), assistant.stdout
    reply_matches_recording(engines, tmp_path / "speaker.wav", reply)


@pytest.fixture
def in_process_pulse(pulse, monkeypatch):
    """The private server's microphone for PortAudio in this process."""
    from voice.devices import PORTAUDIO

    pulse.start(speaker=False)
    for key, value in pulse.env().items():
        if key.startswith(("PULSE_", "XDG_RUNTIME")):
            monkeypatch.setenv(key, value)
    PORTAUDIO.reinitialise()  # PortAudio may have started in this process before the server existed
    yield pulse
    PORTAUDIO.reinitialise()


def test_input_overflow_is_counted_and_reported_not_fatal(in_process_pulse, caplog):
    """The audio callback never blocks: with nobody reading, blocks are dropped and counted."""
    from voice.capture import MicrophoneSource

    mic = MicrophoneSource(None, frame_ms=20, sample_rate=16000, queue_frames=5)
    try:
        time.sleep(1.0)  # about 50 blocks arrive; the queue holds 5
        assert mic.overflows > 0
        frames = mic.frames(threading.Event())
        got = [next(frames) for _ in range(25)]  # and the microphone goes on
        assert all(len(f.pcm) == 320 and f.sample_rate == 16000 for f in got)
        assert "blocks dropped so far" in caplog.text
    finally:
        mic.close()


def test_a_still_room_is_read_a_few_blocks_at_a_time_and_a_voice_at_once(in_process_pulse, questions):
    """Nothing needing each block at once (`attentive`), a still room is read RELAXED_POLL_S apart,
    several blocks together; a voice makes it read each block as it comes; no block is dropped."""
    from voice.capture import RELAX_AFTER_S, MicrophoneSource
    from voice.level import dbfs

    mic = MicrophoneSource(None, frame_ms=20, sample_rate=16000)
    mic.attentive = lambda: False
    frames = mic.frames(threading.Event())

    def take(seconds: float) -> list:
        """Frames for `seconds`, each with the time it was handed over."""
        got, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            got.append((next(frames), time.monotonic()))
        return got

    def bunched(got: list) -> float:
        """The share of frames handed over together with the one before."""
        return float(np.mean(np.diff([at for _, at in got]) < 0.005))

    try:
        take(RELAX_AFTER_S + 0.3)
        still = take(1.0)
        speaking = threading.Thread(target=in_process_pulse.say, args=(questions[QUESTIONS[0]],))
        speaking.start()
        take(0.6)  # the question's lead-in silence, then its first words
        voice = take(0.8)
        speaking.join()
        assert bunched(still) >= 0.5, f"a still room: {bunched(still):.2f} of its frames came together"
        assert bunched(voice) <= 0.3, f"a voice: {bunched(voice):.2f} of its frames came together"
        assert max(dbfs(f.pcm) for f, _ in voice) > -40, "the voice is in the frames"
        assert mic.overflows == 0
    finally:
        mic.close()


def test_alsa_lib_notes_go_to_the_log_not_the_terminal(capfd, caplog):
    """alsa-lib prints "underrun occurred" at each reply's first block after the speaker idled;
    any of its notes, here the one for a device that does not exist, goes to the log instead."""
    import ctypes
    import logging

    from voice.devices import PORTAUDIO

    PORTAUDIO.route_alsa_messages()
    asound = ctypes.CDLL("libasound.so.2")
    pcm = ctypes.c_void_p()
    with caplog.at_level(logging.DEBUG, logger="voice.devices"):
        assert asound.snd_pcm_open(ctypes.byref(pcm), b"no_such_device", 0, 0) < 0
    assert "ALSA lib" not in capfd.readouterr().err
    assert "Unknown PCM" in caplog.text
