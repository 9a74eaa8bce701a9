"""Bad input through the command line: a one-line error and its documented exit code, or
sensible handling; never a traceback. Files are made at test time around recorded speech."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from conftest import wer
from voice import models

ROOT = Path(__file__).resolve().parents[1]
CLIP = "LJ001-0004.wav"  # "produced the block books, which were the immediate predecessors of the true printed book,"
EXIT_CONFIG, EXIT_MODEL, EXIT_INPUT = 3, 4, 5


def voice(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "voice", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def speech(shared_clips):
    """The recorded clip with a second of silence around it (float32, its own rate), and its transcript."""
    clip = next(c for c in shared_clips if c["file"] == CLIP)
    pcm, rate = soundfile.read(str(clip["path"]), dtype="float32")
    silence = np.zeros(rate, np.float32)
    return np.concatenate([silence, pcm, silence]), rate, clip["transcript"]


def make_input(kind: str, speech, directory: Path) -> Path:
    pcm, rate, _ = speech
    path = directory / f"{kind}.wav"
    if kind == "not_audio":
        path.write_text("this is a text file, not audio\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated_header":
        soundfile.write(str(path), pcm, rate, subtype="PCM_16")
        path.write_bytes(path.read_bytes()[:30])
    elif kind == "missing":
        pass
    elif kind == "8khz":
        soundfile.write(str(path), soxr.resample(pcm, rate, 8000), 8000, subtype="PCM_16")
    elif kind == "96khz":
        soundfile.write(str(path), soxr.resample(pcm, rate, 96000), 96000, subtype="PCM_24")
    elif kind == "6_channels":
        soundfile.write(str(path), np.tile(pcm[:, None], (1, 6)), rate, subtype="PCM_16")
    elif kind == "float32":
        soundfile.write(str(path), pcm, rate, subtype="FLOAT")
    elif kind == "clipping":
        soundfile.write(str(path), np.clip(pcm * 20, -1, 1), rate, subtype="PCM_16")
    elif kind == "truncated_data":  # the header promises more samples than the file holds
        soundfile.write(str(path), pcm, rate, subtype="PCM_16")
        data = path.read_bytes()
        path.write_bytes(data[:len(data) - len(data) // 8])
    elif kind == "silence":
        soundfile.write(str(path), np.zeros(5 * rate, np.float32), rate, subtype="PCM_16")
    elif kind == "white_noise":
        noise = np.random.default_rng(0).normal(0, 0.3, 5 * rate).clip(-1, 1)
        soundfile.write(str(path), noise.astype(np.float32), rate, subtype="PCM_16")
    return path


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.mark.parametrize("kind, words", [
    ("not_audio", ["cannot read", "as audio"]),
    ("empty", ["empty"]),
    ("truncated_header", ["cannot read", "as audio"]),
    ("missing", ["not found"]),
])
def test_unreadable_input_file(kind, words, speech, tmp_path):
    path = make_input(kind, speech, tmp_path)
    assert_one_line_error(voice("--input", str(path), "--fast", "--output", str(tmp_path / "out.wav")),
                          EXIT_INPUT, str(path), *words)


@pytest.mark.parametrize("kind", ["8khz", "96khz", "6_channels", "float32", "clipping", "truncated_data"])
def test_odd_but_readable_speech_is_answered(kind, speech, tmp_path):
    path = make_input(kind, speech, tmp_path)
    result = voice("--input", str(path), "--fast", "--output", str(tmp_path / "out.wav"))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    heard = [line[5:] for line in result.stdout.splitlines() if line.startswith("you: ")]
    replies = [line for line in result.stdout.splitlines() if line.startswith("assistant")]
    assert len(heard) == 1 and len(replies) == 1, result.stdout
    transcript = speech[2]
    if kind == "truncated_data":  # the end is missing: what is there is heard
        assert wer(" ".join(transcript.split()[:8]), " ".join(heard[0].split()[:8])) <= 0.3, heard
    else:
        assert wer(transcript, heard[0]) <= 0.3, heard


@pytest.mark.parametrize("kind", ["silence", "white_noise"])
def test_no_speech_makes_no_turn(kind, speech, tmp_path):
    path = make_input(kind, speech, tmp_path)
    metrics = tmp_path / "turns.jsonl"
    result = voice("--input", str(path), "--fast", "--output", str(tmp_path / "out.wav"), "--metrics", str(metrics))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "you:" not in result.stdout and "assistant" not in result.stdout, result.stdout
    turns = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.exists() else []
    assert all("dropped" in t for t in turns), turns  # noise: no turn, or one dropped with its reason


@pytest.mark.parametrize("toml, code, words", [
    ("[vad\nend_silence_ms = 500\n", EXIT_CONFIG, ["not valid TOML", "line 1"]),
    ("[vad]\nbogus = 1\n", EXIT_CONFIG, ["unknown config key 'vad.bogus'"]),
    ('[vad]\nend_silence_ms = "long"\n', EXIT_CONFIG, ["'vad.end_silence_ms' must be int"]),
    ('[llm]\nmodel = "/nonexistent/model.gguf"\n', EXIT_MODEL, ["/nonexistent/model.gguf", "llm.model"]),
    ('[stt]\nmodel = "/nonexistent/whisper"\n', EXIT_MODEL, ["/nonexistent/whisper", "stt.model"]),
    ('[tts]\nvoice = "/nonexistent/voice.onnx"\n', EXIT_MODEL, ["/nonexistent/voice.onnx", "tts.voice"]),
], ids=["malformed", "unknown_key", "wrong_type", "llm_path", "stt_path", "tts_path"])
def test_bad_config(toml, code, words, speech, tmp_path):
    config = tmp_path / "user.toml"
    config.write_text(toml)
    wav = make_input("float32", speech, tmp_path)
    assert_one_line_error(voice("--config", str(config), "--input", str(wav), "--fast", "--output",
                                str(tmp_path / "out.wav")), code, *words)


def test_a_broken_voice_file_is_one_line_error(speech, tmp_path, monkeypatch):
    """Not a graph onnxruntime can read (the cache of optimized graphs, voice/piper_voice.py, adds nothing)."""
    voice_file = tmp_path / "broken.onnx"
    voice_file.write_bytes(b"\x00" * 4096)
    voice_file.with_name("broken.onnx.json").write_text(
        (models.piper_voice_file("bundled").parent / "en_US-joe-medium.onnx.json").read_text())
    config = tmp_path / "user.toml"
    config.write_text(f'[tts]\nvoice = "{voice_file}"\n')
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    wav = make_input("float32", speech, tmp_path)
    assert_one_line_error(voice("--config", str(config), "--input", str(wav), "--fast", "--output",
                                str(tmp_path / "out.wav")), EXIT_MODEL, "cannot load the Piper voice", str(voice_file))


def test_check_models_loads_them_and_keeps_the_voice_graph(tmp_path, monkeypatch):
    """What scripts/setup runs: the models as configured, Piper's optimized graph kept for launches."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    result = voice("--check-models")
    assert result.returncode == 0 and result.stdout.startswith("models ready"), result.stderr
    kept = sorted(p.name.rsplit("-", 1)[1] for p in (tmp_path / "cache" / "voice-assistant").iterdir())
    assert kept == ["flow.onnx", "prior.onnx", "vocoder.onnx"]
    config = tmp_path / "user.toml"
    config.write_text('[llm]\nmodel = "/nonexistent/model.gguf"\n')
    assert_one_line_error(voice("--check-models", "--config", str(config)), EXIT_MODEL, "/nonexistent/model.gguf")


def test_missing_config_file(tmp_path):
    assert_one_line_error(voice("--config", str(tmp_path / "nowhere.toml")), EXIT_CONFIG, "not found")


def test_a_ten_minute_monologue_is_cut_into_turns_each_answered(shared_clips, tmp_path):
    """Recorded speech, back to back with short breaths, for 10 minutes: vad.max_turn_s (30 s)
    cuts it into turns, and every turn is answered, interrupted (the speaker talks over the
    replies, which is barge-in) or dropped with its reason."""
    rate = 16000
    breath = np.zeros(int(0.2 * rate), np.float32)
    clips = []
    for clip in shared_clips:
        pcm, clip_rate = soundfile.read(str(clip["path"]), dtype="float32", always_2d=True)
        clips += [soxr.resample(pcm.mean(axis=1), clip_rate, rate), breath]
    one_pass = np.concatenate(clips)
    monologue = np.tile(one_pass, int(np.ceil(600 * rate / len(one_pass))))[:600 * rate]
    path = tmp_path / "monologue.wav"
    soundfile.write(str(path), monologue, rate, subtype="PCM_16")
    metrics = tmp_path / "turns.jsonl"
    result = voice("--input", str(path), "--fast", "--output", str(tmp_path / "out.wav"), "--metrics", str(metrics),
                   timeout=900)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    turns = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert len(turns) >= 600 // 30, f"{len(turns)} turns"
    unaccounted = [t for t in turns if not t.get("reply") and not t.get("dropped") and not t.get("interrupted")]
    assert not unaccounted, unaccounted
    assert max(t.get("audio_s") or 0 for t in turns) <= 30.5, "no turn is longer than vad.max_turn_s"
    heard = [t for t in turns if not t.get("dropped")]
    assert len(heard) >= 0.9 * len(turns), [t.get("dropped") for t in turns]
    assert all(t.get("transcript") for t in heard), "every turn that was not dropped was transcribed"
    assert any(t.get("reply") and not t.get("interrupted") for t in turns), "replies were spoken in full"
