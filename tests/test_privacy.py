"""Privacy and safety: no network at run time, and nothing the model says is executed."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

from voice.capture import FileSource
from voice.metrics import TurnMetrics
from voice.pipeline import Pipeline
from voice.playback import WavSink

ROOT = Path(__file__).resolve().parents[1]

NO_NETWORK = """
import socket, sys
def refuse(*args, **kwargs):
    raise OSError("network access attempted: %r" % (args[:2],))
class NoSocket(socket.socket):
    def __init__(self, family=-1, *args, **kwargs):
        if family not in (-1, socket.AF_UNIX):
            refuse(family)
        super().__init__(family, *args, **kwargs)
    def connect(self, address):
        if not isinstance(address, str):
            refuse(address)
        return super().connect(address)
socket.socket = NoSocket
socket.create_connection = refuse
socket.getaddrinfo = refuse
from voice.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_whole_turn_runs_with_the_network_forbidden(synth_question, tmp_path):
    """Model loading and a whole turn, in a process where every internet socket raises."""
    question = synth_question("What is the capital of France?")
    result = subprocess.run([sys.executable, "-c", NO_NETWORK, "--input", str(question), "--fast",
                             "--output", str(tmp_path / "reply.wav")], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "network access attempted" not in result.stderr, result.stderr
    assert "you: " in result.stdout and "assistant: " in result.stdout, result.stdout


class SaysCode:
    """The real chat model, its reply prefixed with shell and Python that would leave a file if run."""

    def __init__(self, chat, marker: Path) -> None:
        self.chat, self.marker = chat, marker

    def __getattr__(self, name):
        return getattr(self.chat, name)

    def stream(self, messages, cancel):
        yield f"Run $(touch {self.marker}) and `touch {self.marker}` or __import__('os').system('touch {self.marker}'). "
        yield from self.chat.stream(messages, cancel)


def test_code_in_a_reply_is_only_spoken(engines, config, synth_question, tmp_path):
    marker = tmp_path / "executed"
    engines = dataclasses.replace(engines, chat=SaysCode(engines.chat, marker))
    metrics = TurnMetrics()
    source = FileSource(synth_question("What is the capital of France?"), config.audio.frame_ms, realtime=False,
                        tail_s=1.0)
    pipeline = Pipeline(config, engines, source, WavSink(tmp_path / "reply.wav", engines.synthesizer.sample_rate),
                        half_duplex=False)
    pipeline.bus.subscribe(metrics)
    pipeline.run()
    replies = [t for t in metrics.turns if t.get("reply")]
    assert len(replies) == 1 and "touch" in replies[0]["reply"], metrics.turns
    assert not marker.exists(), "a command in the reply was executed"
    assert "playback_start" in replies[0], "the reply was spoken"


def test_the_package_has_no_way_to_execute_text():
    """No eval/exec/os.system/shell=True anywhere in voice/: text never becomes code or a command."""
    pattern = re.compile(r"(?<![.\w])(eval|exec)\(|os\.system\(|os\.popen\(|shell\s*=\s*True")
    offenders = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
                 for path in sorted((ROOT / "voice").rglob("*.py"))
                 for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not offenders, offenders
