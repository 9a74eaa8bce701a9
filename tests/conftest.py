"""Shared fixtures: the real bundled models, loaded once per test session, and test audio."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile

from voice.config import load_config

# the workplace (and CI) lays shared/ beside the repository
SHARED_AUDIO = Path(os.environ.get("VOICE_SHARED_AUDIO", Path(__file__).resolve().parents[2] / "shared" / "audio"))


def normalise(text: str) -> str:
    text = text.lower().replace("-", " ")
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9' ]", " ", text)).strip()


def wer(reference: str, hypothesis: str) -> float:
    return jiwer.wer(normalise(reference), normalise(hypothesis) or "<empty>")


@pytest.fixture(autouse=True)
def private_data_dir(tmp_path_factory, monkeypatch):
    """Memory (voice/memory.py) lives in the user's data directory: tests, and the CLI they start,
    get a fresh empty one each, never the real one."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg_data")))


@pytest.fixture(scope="session")
def shared_clips() -> list[dict]:
    manifest = json.loads((SHARED_AUDIO / "manifest.json").read_text())
    return [dict(s, path=SHARED_AUDIO / s["file"]) for s in manifest["samples"]]


def steady_speech(synthesizer, text: str) -> np.ndarray:
    """Piper saying `text` (float32 at its own rate) without its random noise: the same samples at
    every run, so a test hears the same reply each time."""
    return synthesizer.whole(text, steady=True)


@pytest.fixture(scope="session")
def config():
    return load_config()


@pytest.fixture(scope="session")
def engines(config):
    from voice.pipeline import load_engines

    return load_engines(config)


@pytest.fixture(scope="session")
def synth_question(engines, tmp_path_factory):
    """Speak a question with Piper into a WAV at 22.05 kHz, with silence around it; returns a factory.
    Without Piper's random noise: with it, tiny.en heard one "Stop." in ~15 as "Start.", so the test
    of the stop skill failed now and then; a question is the same samples at every run."""
    made: dict[str, Path] = {}

    def make(text: str, lead_s: float = 0.5, tail_s: float = 1.0) -> Path:
        if text not in made:
            tts = engines.synthesizer
            pcm = steady_speech(tts, text) * 0.6
            rate = tts.sample_rate
            pcm = np.concatenate([np.zeros(int(lead_s * rate)), pcm, np.zeros(int(tail_s * rate))])
            path = tmp_path_factory.mktemp("q") / (normalise(text).replace(" ", "_")[:40] + ".wav")
            soundfile.write(str(path), pcm.astype(np.float32), rate, subtype="PCM_16")
            made[text] = path
        return made[text]

    return make
