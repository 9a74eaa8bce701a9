"""A private PulseAudio server with virtual devices, for live-mode tests.

    mic        a pipe source (the DEFAULT SOURCE, the assistant's microphone), fed in real time
               by `MicFeeder`: silence, and the questions a test says into it
    speaker    a null sink (optional), the DEFAULT SINK; the test records speaker.monitor

Unloading a module is what unplugging a device looks like. PulseAudio moves a stream whose
device went to another one if it can (a sink's monitor is a source), so a test of a lost
microphone runs without the speaker sink: then the stream really ends.

The server runs without default.pa (no hardware probing), in its own runtime directory,
and is stopped by the process handle this class started: a caller's own session server is
never touched. The same recipe as the workplace's vdev.sh, kept here so the suite owns it.
"""

from __future__ import annotations

import errno
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

RATE = 48000  # Hz of the speaker null sink
MIC_RATE = 16000  # Hz of the pipe source
BLOCK = MIC_RATE // 50  # samples per write: 20 ms


class PulseServer:
    def __init__(self, runtime_dir: Path) -> None:
        self.dir = Path(runtime_dir)
        self.socket = self.dir / "pulse" / "native"
        self.proc: subprocess.Popen | None = None
        self.mic_module: int | None = None

    @staticmethod
    def available() -> bool:
        return all(shutil.which(tool) for tool in ("pulseaudio", "pactl", "paplay", "parec"))

    def env(self) -> dict[str, str]:
        """What a client (python -m voice, pactl, paplay) needs to reach this server only."""
        return {**os.environ, "XDG_RUNTIME_DIR": str(self.dir), "PULSE_SERVER": f"unix:{self.socket}",
                "PULSE_CLIENTCONFIG": str(self.dir / "client.conf"), "PULSE_STATE_PATH": str(self.dir / "state")}

    def pactl(self, *args: str) -> str:
        return subprocess.run(["pactl", *args], env=self.env(), check=True, capture_output=True, text=True,
                              timeout=10).stdout.strip()

    def start(self, speaker: bool = True) -> "PulseServer":
        (self.dir / "state").mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        (self.dir / "client.conf").write_text("autospawn = no\n")
        self.proc = subprocess.Popen(
            ["pulseaudio", "--daemonize=no", "-n", "--exit-idle-time=-1", "--disallow-exit=yes",
             "--disable-shm=yes", "--log-target=stderr", "--log-level=error",
             f"--load=module-native-protocol-unix socket={self.socket} auth-anonymous=1"],
            env=self.env(), stdout=subprocess.DEVNULL, stderr=open(self.dir / "pulseaudio.log", "wb"))
        deadline = time.monotonic() + 10
        while True:
            try:
                self.pactl("info")
                break
            except subprocess.CalledProcessError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"pulseaudio did not start: {(self.dir / 'pulseaudio.log').read_text()}")
                time.sleep(0.1)
        self.feeder = MicFeeder(self.fifo).start()
        self.load_mic()
        if speaker:
            self.load_speaker()
        return self

    @property
    def fifo(self) -> Path:
        return self.dir / "mic.fifo"

    def load_mic(self) -> None:
        """Plug the microphone in (again) and make it the default source."""
        self.mic_module = int(self.pactl("load-module", "module-pipe-source", "source_name=mic", f"file={self.fifo}",
                                         "format=s16le", f"rate={MIC_RATE}", "channels=1"))
        self.pactl("set-default-source", "mic")

    def unload_mic(self) -> None:
        """Unplug the microphone."""
        self.pactl("unload-module", str(self.mic_module))

    def load_speaker(self) -> None:
        self.speaker_module = int(self.pactl("load-module", "module-null-sink", "sink_name=speaker",
                                             "format=s16le", f"rate={RATE}", "channels=1", "norewinds=1"))
        self.pactl("set-default-sink", "speaker")
        self.pactl("set-sink-volume", "speaker", "100%")

    def unload_speaker(self) -> None:
        self.pactl("unload-module", str(self.speaker_module))

    def say(self, pcm16k: np.ndarray) -> None:
        """Say int16 16 kHz audio into the microphone; returns when it has been said."""
        self.feeder.say(pcm16k)

    def record(self, path: Path) -> subprocess.Popen:
        """Start recording the speaker (a 16-bit mono WAV at RATE); stop it with terminate()."""
        return subprocess.Popen(["parec", "--device=speaker.monitor", "--file-format=wav", "--format=s16le",
                                 f"--rate={RATE}", "--channels=1", str(path)], env=self.env())

    def stop(self) -> None:
        if getattr(self, "feeder", None) is not None:
            self.feeder.stop()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class MicFeeder:
    """Writes to the pipe source in real time, like a microphone: silence, or what `say` gives.

    While the source is unloaded (no reader), what would be said is lost, as in a room."""

    def __init__(self, fifo: Path) -> None:
        self.fifo = fifo
        self._audio: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mic-feeder", daemon=True)

    def start(self) -> "MicFeeder":
        self._thread.start()
        return self

    def say(self, pcm: np.ndarray) -> None:
        done = threading.Event()
        self._audio.put((pcm.astype(np.int16), done))
        done.wait(len(pcm) / MIC_RATE + 30)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _blocks(self):
        silence = np.zeros(BLOCK, np.int16).tobytes()
        while not self._stop.is_set():
            try:
                pcm, done = self._audio.get_nowait()
            except queue.Empty:
                yield silence
                continue
            for i in range(0, len(pcm), BLOCK):
                yield np.pad(pcm[i:i + BLOCK], (0, max(0, BLOCK - len(pcm[i:i + BLOCK])))).tobytes()
            done.set()

    def _run(self) -> None:
        fd = None
        t0, n = time.monotonic(), 0
        for block in self._blocks():
            n += BLOCK
            time.sleep(max(0.0, t0 + n / MIC_RATE - time.monotonic()))
            if fd is None:
                try:
                    fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:  # not there (unplugged) or no reader yet
                    continue
            try:
                os.write(fd, block)
            except OSError as e:
                if e.errno != errno.EAGAIN:  # EPIPE: the source was unloaded
                    os.close(fd)
                    fd = None
        if fd is not None:
            os.close(fd)
