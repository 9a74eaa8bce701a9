"""Whole turns through the whole pipeline, replayed from files, with the real models."""

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile
import soxr

from conftest import normalise, wer
from voice.capture import FileSource, read_audio
from voice.metrics import TurnMetrics
from voice.pipeline import Pipeline
from voice.playback import WavSink
from voice.sentences import clean_for_speech


def replay(path, engines, config, out_wav):
    """Run a file through the pipeline as fast as it goes; the finished turn records."""
    metrics = TurnMetrics()
    source = FileSource(path, config.audio.frame_ms, realtime=False, tail_s=1.0)
    pipeline = Pipeline(config, engines, source, WavSink(out_wav, engines.synthesizer.sample_rate), half_duplex=False)
    pipeline.bus.subscribe(metrics)
    pipeline.run()
    assert not pipeline.stop(), "every stage stopped"
    return metrics.turns


def test_the_microphone_is_attentive_while_a_turn_is_open_or_the_assistant_speaks(engines, config, synth_question,
                                                                                   tmp_path):
    """The pipeline tells a microphone when each block is needed at once (voice.capture)."""
    source = FileSource(synth_question("What is the capital of France?"), config.audio.frame_ms)
    pipeline = Pipeline(config, engines, source, WavSink(tmp_path / "out.wav", engines.synthesizer.sample_rate))
    assert not source.attentive(), "a still room, nobody speaking"
    pipeline.vad.segmenter.force_open(time.monotonic())
    assert source.attentive(), "a turn is open"
    pipeline.vad.segmenter.reset()
    pipeline.speaking.set()
    assert source.attentive(), "the assistant speaks"
    pipeline.speaking.clear()
    pipeline.bus.emit("playback_end", 1)
    assert source.attentive(), "the assistant has just spoken"


def test_a_replayed_still_room_is_read_a_few_frames_at_a_time_and_a_voice_at_once(synth_question, tmp_path):
    """At real-time pace, nothing needing each frame at once, a file reads a room as still as the
    microphone does: -60 dBFS of noise (its peaks at -48) a few frames together, a voice each frame
    as it is due; every frame keeps the time it was due, and none is lost."""
    from voice.capture import RELAX_AFTER_S

    noise = np.random.default_rng(0).normal(0, 33, 3 * 16000).astype(np.int16)
    question = read_audio(synth_question("What is the capital of France?"))
    voice_at = len(noise) + int(np.argmax(np.abs(question) > 1000))
    soundfile.write(str(tmp_path / "room.wav"), np.concatenate([noise, question]), 16000)
    source = FileSource(tmp_path / "room.wav", 20)
    source.attentive = lambda: False
    got = [(frame, time.monotonic()) for frame in source.frames(threading.Event())]
    assert len(got) == (len(noise) + len(question)) // 320, "every frame"
    due = np.array([frame.t for frame, _ in got])
    assert np.allclose(np.diff(due), 0.02, atol=1e-6), "each frame has the time it was due"
    together = np.diff([at for _, at in got]) < 0.005  # handed over with the frame before
    still = together[int(RELAX_AFTER_S / 0.02) + 5:len(noise) // 320 - 1]
    voice = together[voice_at // 320 + 5:voice_at // 320 + 45]
    assert still.mean() >= 0.5, f"a still room: {still.mean():.2f} of its frames came together"
    assert voice.mean() <= 0.3, f"a voice: {voice.mean():.2f} of its frames came together"


def check_turn(turns, out_wav, engines, heard_words):
    answered = [t for t in turns if "reply" in t]
    assert len(answered) == 1, turns
    turn = answered[0]
    assert set(heard_words) <= set(normalise(turn["transcript"]).split()), turn["transcript"]
    assert turn["reply"].strip(), "a non-empty reply"
    for key in ("speech_start", "speech_end", "end_of_turn", "transcript_ready", "first_token",
                "first_sentence", "first_tts_audio", "playback_start", "playback_end"):
        assert key in turn, key
    # with speculation, transcription and the reply may start before the end of turn is decided
    assert turn["speech_end"] <= turn["transcript_ready"] <= turn["first_token"] <= turn["first_sentence"]
    assert turn["first_sentence"] <= turn["first_tts_audio"] <= turn["playback_start"] <= turn["playback_end"]
    assert turn["speech_end"] <= turn["end_of_turn"] <= turn["playback_start"], "nothing plays before the turn ends"
    # the reply audio is speech saying the reply
    audio = read_audio(out_wav).astype(np.float32) / 32768.0
    assert len(audio) > 8000, "at least half a second of reply audio"
    heard = engines.transcriber.transcribe(audio).text
    assert wer(clean_for_speech(turn["reply"]), heard) <= 0.4, (turn["reply"], heard)


def test_recorded_human_speech_flac_44k_stereo(engines, config, shared_clips, tmp_path):
    clip = next(c for c in shared_clips if c["file"] == "jfk.flac")
    info = soundfile.info(str(clip["path"]))
    assert (info.samplerate, info.channels) == (44100, 2)
    turns = replay(clip["path"], engines, config, tmp_path / "reply.wav")
    # Kennedy pauses for longer than the end-of-turn window: each phrase is a turn, each answered
    assert len(turns) >= 2 and all(t.get("reply") for t in turns), turns
    assert wer(clip["transcript"], " ".join(t["transcript"] for t in turns)) <= 0.2
    assert soundfile.info(str(tmp_path / "reply.wav")).duration > len(turns) * 0.5


def test_piper_synthesized_question(engines, config, synth_question, tmp_path):
    question = synth_question("What is the capital of France?")
    turns = replay(question, engines, config, tmp_path / "reply.wav")
    check_turn(turns, tmp_path / "reply.wav", engines, ["capital", "france"])


def test_8khz_mono_wav(engines, config, shared_clips, tmp_path):
    clip = next(c for c in shared_clips if c["file"] == "LJ001-0006.wav")
    data, rate = soundfile.read(str(clip["path"]), dtype="float32")
    path = tmp_path / "q8k.wav"
    soundfile.write(str(path), soxr.resample(data, rate, 8000), 8000, subtype="PCM_16")
    turns = replay(path, engines, config, tmp_path / "reply.wav")
    check_turn(turns, tmp_path / "reply.wav", engines, ["worth", "example", "typography"])


def test_two_questions_make_two_turns_with_history(engines, config, synth_question, tmp_path):
    a = read_audio(synth_question("My name is Alice."))
    b = read_audio(synth_question("What is my name?"))
    path = tmp_path / "two.wav"
    soundfile.write(str(path), np.concatenate([a, np.zeros(16000, np.int16), b]), 16000)
    metrics = TurnMetrics()
    source = FileSource(path, config.audio.frame_ms, realtime=False, tail_s=1.0)
    pipeline = Pipeline(config, engines, source, WavSink(tmp_path / "r.wav", 22050), half_duplex=False)
    pipeline.bus.subscribe(metrics)
    pipeline.run()
    assert [normalise(t["transcript"]) for t in metrics.turns] == ["my name is alice", "what is my name"]
    history = pipeline.conversation.messages("again")
    assert [m["role"] for m in history] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "alice" in normalise(history[1]["content"])


def test_cli_replays_a_file(synth_question, tmp_path):
    question = synth_question("What is the capital of France?")
    out, metrics = tmp_path / "reply.wav", tmp_path / "m.jsonl"
    proc = subprocess.run([sys.executable, "-m", "voice", "--input", str(question), "--output", str(out),
                           "--fast", "--metrics", str(metrics)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(l.startswith("you: ") and "France" in l for l in lines), lines
    assert any(l.startswith("assistant: ") and len(l) > 12 for l in lines), lines
    record = json.loads(metrics.read_text().splitlines()[0])
    assert record["response_latency_s"] > 0 and record["reply"]
    assert soundfile.info(str(out)).duration > 0.5


@pytest.mark.parametrize("args, code, message", [
    (["--input", "/nonexistent.wav"], 5, "input file not found"),
    (["--config", "/nonexistent.toml", "--input", "x.wav"], 3, "config file not found"),
])
def test_cli_errors_are_one_line(args, code, message, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "voice", *args], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert proc.returncode == code
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_model_is_named(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[llm]\nmodel = "models/nothing-here.gguf"\n')
    (tmp_path / "q.wav").write_bytes(b"")
    soundfile.write(str(tmp_path / "q.wav"), np.zeros(1600, np.float32), 16000)
    proc = subprocess.run([sys.executable, "-m", "voice", "--config", str(cfg), "--input", "q.wav", "--fast"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 4, proc.stderr
    assert "nothing-here.gguf" in proc.stderr and "Traceback" not in proc.stderr


def test_the_model_is_only_called_on_the_llm_stage_thread(engines, config, synth_question, tmp_path, monkeypatch):
    """The system prompt's first reading and every reply run on the LLM stage's thread: llama.cpp's
    OpenMP runtime makes the threads of one caller sleep at every barrier once another caller has a
    team of its own (voice.llm.LlmStage), so a call from the main thread slows every reply after it."""
    import threading

    callers = []
    stream = engines.chat.stream

    def recording(messages, cancel):
        callers.append((threading.current_thread().name, messages[-1]["content"]))
        return stream(messages, cancel)

    monkeypatch.setattr(engines.chat, "stream", recording)
    turns = replay(synth_question("What is the capital of France?"), engines, config, tmp_path / "reply.wav")
    assert any(t.get("reply") for t in turns), turns
    assert callers[0] == ("llm", ""), "the system prompt is read first, on the LLM thread"
    assert any("france" in normalise(text) for _, text in callers), callers
    assert {name for name, _ in callers} == {"llm"}, callers


def test_loading_the_models_does_not_call_the_model(config, monkeypatch):
    """Loading happens on the main thread: nothing of llama.cpp may run there (see above)."""
    from voice.llm import LlamaChatModel
    from voice.pipeline import load_engines

    calls = []
    monkeypatch.setattr(LlamaChatModel, "stream", lambda self, messages, cancel: calls.append(messages) or iter(()))
    load_engines(config)
    assert calls == []


def test_new_engines_are_warmed_up_on_their_stage_threads_once(engines, config, synth_question, tmp_path, monkeypatch):
    """The first pipeline on new engines runs Whisper and Piper once on nothing before the first
    question (their first call costs more), on the threads that will run them; nothing of it is
    heard or makes a turn, and a second pipeline on the same engines does not do it again."""
    import dataclasses
    import threading

    from voice.stt import WARM_UP_AUDIO
    from voice.tts import WARM_UP_TEXT

    calls = []
    transcribe, synthesize = engines.transcriber.transcribe, engines.synthesizer.synthesize

    def recording_transcribe(audio):
        calls.append((threading.current_thread().name, "stt", len(audio)))
        return transcribe(audio)

    def recording_synthesize(text):
        calls.append((threading.current_thread().name, "tts", text))
        return synthesize(text)

    monkeypatch.setattr(engines.transcriber, "transcribe", recording_transcribe)
    monkeypatch.setattr(engines.synthesizer, "synthesize", recording_synthesize)
    new = dataclasses.replace(engines, cold=True)
    question = synth_question("What is the capital of France?")
    check_turn(replay(question, new, config, tmp_path / "first.wav"), tmp_path / "first.wav", engines, ["france"])
    assert ("stt", "stt", len(WARM_UP_AUDIO)) == next(c for c in calls if c[1] == "stt"), calls
    assert ("tts", "tts", WARM_UP_TEXT) == next(c for c in calls if c[1] == "tts"), calls
    assert not new.cold
    calls.clear()
    check_turn(replay(question, new, config, tmp_path / "second.wav"), tmp_path / "second.wav", engines, ["france"])
    assert ("tts", "tts", WARM_UP_TEXT) not in calls and ("stt", "stt", len(WARM_UP_AUDIO)) not in calls, calls
