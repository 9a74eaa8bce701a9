#!/usr/bin/env python3
"""Save a picture of the window for the README: a real turn, rendered offscreen by Qt.

Piper speaks a question, which is replayed as the microphone through the whole pipeline
(Whisper, the LLM, Piper, a WAV file as the speaker); F9 is "held" for the question, and the window is
grabbed while the reply plays. Usage: .venv/bin/python scripts/screenshot_gui.py [OUT.png]  (default docs/window.png)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import soundfile  # noqa: E402

from voice.capture import FileSource  # noqa: E402
from voice.config import load_config  # noqa: E402
from voice.gui import AssistantWindow, make_app  # noqa: E402
from voice.pipeline import Pipeline, load_engines  # noqa: E402
from voice.playback import WavSink  # noqa: E402

QUESTION = "What is the capital of France?"


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "window.png"
    config = load_config().replace("hotkey", key="F9")
    engines = load_engines(config)
    app = make_app()
    with tempfile.TemporaryDirectory() as tmp:
        rate = engines.synthesizer.sample_rate
        speech = engines.synthesizer.whole(QUESTION) * 0.6
        wav = Path(tmp) / "question.wav"
        soundfile.write(str(wav), np.concatenate([np.zeros(rate // 2), speech, np.zeros(rate)]).astype(np.float32),
                        rate, subtype="PCM_16")
        source = FileSource(wav, config.audio.frame_ms, config.audio.sample_rate, realtime=True, tail_s=1.0)
        sink = WavSink(Path(tmp) / "reply.wav", rate, pace=True)
        pipeline = Pipeline(config, engines, source, sink, half_duplex=False)
        window = AssistantWindow(pipeline, config, "push-to-talk: F9 (hold) via pynput (X11, works in any window)")
        seen: list[str] = []
        window.bridge.received.connect(lambda e: seen.append(e.kind))
        window.show()
        pipeline.start()
        pipeline.push_to_talk(True)  # as if F9 were held for the question
        release_at = time.monotonic() + source.duration + 0.2
        deadline = time.monotonic() + 120
        while "playback_start" not in seen and time.monotonic() < deadline:
            if release_at and time.monotonic() > release_at:
                pipeline.push_to_talk(False)
                release_at = 0.0
            app.processEvents()
            time.sleep(0.01)
        settle = time.monotonic() + 0.3  # the reply's first sentence is shown as it plays
        while time.monotonic() < settle:
            app.processEvents()
            time.sleep(0.01)
        out.parent.mkdir(parents=True, exist_ok=True)
        ok = window.grab().save(str(out))
        window.close()
    print(f"saved {out}" if ok else f"error: could not save {out}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
