"""The LLM on an OpenAI-compatible server: llama-cpp-python's own server, a real subprocess on loopback.

The server runs the bundled GGUF with an API key, so the key path is exercised too.
"""

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest

from voice.capture import FileSource, read_audio
from voice.frames import AudioFrame
from voice.llm import ChatModelUnavailable
from voice.llm_openai import FallbackChatModel, OpenAIChatModel, make_chat_model
from voice.metrics import TurnMetrics
from voice.models import gguf_file
from voice.pipeline import Engines, Pipeline
from voice.playback import WavSink

API_KEY = "test-key-7f3a"
KEY_ENV = "VOICE_LLM_API_KEY"
QUESTION = "What is the capital of France?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {timeout_s} s")
        time.sleep(0.1)


class LlamaServer:
    """`python -m llama_cpp.server` with the bundled GGUF on a loopback port; stoppable and restartable."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_file("bundled")), "--host", "127.0.0.1",
             "--port", str(self.port), "--api_key", API_KEY, "--n_ctx", "2048", "--n_threads", "1"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        wait_until(self._ready, 120, f"the llama.cpp server on port {self.port}")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"the llama.cpp server exited ({self.proc.returncode}):\n{self.log()[-2000:]}")
        try:
            return httpx.get(f"{self.url}/models", headers={"Authorization": f"Bearer {API_KEY}"}).is_success
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def ensure_running(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def disconnects(self) -> int:
        """How often the server saw a client leave mid-reply (it prints this when it stops generating)."""
        return self.log().count("Disconnected from client")


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = LlamaServer(tmp_path_factory.mktemp("llama_server") / "server.log")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, API_KEY)


@pytest.fixture
def remote(config, server):
    """The default config with the server selected, the server up."""
    server.ensure_running()
    return config.replace("llm", backend="openai", base_url=server.url, api_key_env=KEY_ENV)


class ClipQueueSource:
    """A microphone stand-in: says a clip when told, and stays open between clips until `end()`."""

    def __init__(self, frame_ms: int = 20, sample_rate: int = 16000) -> None:
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        self._clips: queue.Queue = queue.Queue()

    def say(self, path: Path) -> None:
        self._clips.put(read_audio(path, self.sample_rate))

    def end(self) -> None:
        self._clips.put(None)

    def frames(self, stop: threading.Event):
        n = self.frame_samples
        while not stop.is_set():
            try:
                pcm = self._clips.get(timeout=0.05)
            except queue.Empty:
                continue
            if pcm is None:
                return
            for i in range(0, len(pcm) - n + 1, n):
                yield AudioFrame(pcm[i:i + n], self.sample_rate, time.monotonic())

    def close(self) -> None:
        pass


def run_turn(config, engines, chat, question: Path, out_wav: Path) -> list[dict]:
    """One question from a file through the whole pipeline with `chat` answering; the turn records."""
    metrics = TurnMetrics()
    source = FileSource(question, config.audio.frame_ms, realtime=False, tail_s=1.0)
    pipeline = Pipeline(config, Engines(engines.transcriber, chat, engines.synthesizer), source,
                        WavSink(out_wav, engines.synthesizer.sample_rate), half_duplex=False)
    pipeline.bus.subscribe(metrics)
    pipeline.run()
    assert not pipeline.stop(), "every stage stopped"
    return metrics.turns


def reply_audio_s(path: Path) -> float:
    audio = read_audio(path)
    assert np.abs(audio).max() > 1000, "the reply is audible"
    return len(audio) / 16000


def test_a_spoken_turn_is_answered_by_the_server(engines, remote, synth_question, tmp_path):
    chat = make_chat_model(remote)
    assert isinstance(chat, OpenAIChatModel)
    turns = run_turn(remote, engines, chat, synth_question(QUESTION), tmp_path / "reply.wav")
    assert len(turns) == 1, turns
    turn = turns[0]
    assert "capital" in turn["transcript"].lower()
    assert turn["reply"].strip() and "can't reach" not in turn["reply"], turn
    assert turn["backend"] == "openai" and "llm_unreachable" not in turn
    assert turn["transcript_ready"] <= turn["first_token"] <= turn["playback_start"]
    assert reply_audio_s(tmp_path / "reply.wav") > 0.5
    chat.close()


def long_story(model, cancel):
    return model.stream([{"role": "user", "content": "Tell me a very long story about a dragon and a knight."}],
                        cancel)


@pytest.mark.timeout(120)
def test_cancel_closes_the_stream_and_the_server_stops(remote, server):
    responses: list[httpx.Response] = []
    client = httpx.Client(timeout=remote.llm.timeout_s, event_hooks={"response": [responses.append]})
    model = OpenAIChatModel(replace(remote.llm, max_tokens=1500), client)

    # barge-in: the cancel event is set while tokens flow
    before = server.disconnects()
    cancel = threading.Event()
    tokens = long_story(model, cancel)
    assert all(next(tokens) for _ in range(3))
    cancel.set()
    assert list(tokens) == [], "no token after cancel"
    assert responses[-1].is_closed
    wait_until(lambda: server.disconnects() > before, 60, "the server to notice the client left")

    # the consumer stops iterating (the stage was stopped)
    before = server.disconnects()
    tokens = long_story(model, threading.Event())
    assert all(next(tokens) for _ in range(3))
    tokens.close()
    assert responses[-1].is_closed
    wait_until(lambda: server.disconnects() > before, 60, "the server to notice the client left")

    # and the server answers the next request
    assert "".join(model.stream([{"role": "user", "content": QUESTION}], threading.Event())).strip()
    model.close()


@pytest.mark.timeout(300)
def test_server_down_mid_session_then_back(config, engines, remote, server, synth_question, tmp_path):
    chat = make_chat_model(remote)
    source = ClipQueueSource(config.audio.frame_ms)
    metrics, done = TurnMetrics(), queue.Queue()
    pipeline = Pipeline(remote, Engines(engines.transcriber, chat, engines.synthesizer), source,
                        WavSink(tmp_path / "r.wav", engines.synthesizer.sample_rate), half_duplex=False)
    pipeline.bus.subscribe(metrics)
    pipeline.bus.subscribe(lambda e: done.put(e) if e.kind == "reply_done" else None)
    pipeline.start()
    question = synth_question(QUESTION)
    try:
        source.say(question)
        first = done.get(timeout=120)
        assert first.text and "can't reach" not in first.text

        server.stop()
        source.say(question)
        failed = done.get(timeout=120)
        assert failed.text == f"I can't reach the language model at {server.url}."

        server.start()
        source.say(question)
        again = done.get(timeout=120)
        assert again.text and "can't reach" not in again.text
        source.end()
        assert pipeline.wait(60)
    finally:
        stuck = pipeline.stop()
    assert not stuck
    records = metrics.turns  # (a speculative turn taken back is none)
    assert [r.get("backend") for r in records] == ["openai", None, "openai"]
    assert "cannot connect" in records[1]["llm_unreachable"]
    assert records[1]["playback_start"], "the message was spoken"
    # the failed turn is not history the model sees later
    assert [t.assistant for t in pipeline.conversation.turns] == [first.text, again.text]
    chat.close()


@pytest.mark.timeout(120)
def test_server_dying_mid_reply_ends_the_stream(remote, server):
    model = OpenAIChatModel(replace(remote.llm, max_tokens=1500))
    tokens = long_story(model, threading.Event())
    next(tokens)
    server.proc.kill()
    server.proc.wait()
    with pytest.raises(ChatModelUnavailable) as failure:
        for _ in tokens:
            pass
    assert failure.value.reply == f"I can't reach the language model at {server.url}."
    model.close()
    server.start()


@pytest.mark.timeout(60)
def test_a_silent_server_times_out(config):
    with socket.socket() as s:  # accepts connections (the kernel does) and never answers
        s.bind(("127.0.0.1", 0))
        s.listen()
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
        model = OpenAIChatModel(replace(config.llm, backend="openai", base_url=url, timeout_s=1.0))
        with pytest.raises(ChatModelUnavailable, match="can't reach") as failure:
            list(model.stream([{"role": "user", "content": "Hi"}], threading.Event()))
    assert "timed out" in failure.value.reason
    model.close()


def test_a_wrong_api_key_is_an_http_error(remote, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "not-the-key")
    model = OpenAIChatModel(remote.llm)
    with pytest.raises(ChatModelUnavailable) as failure:
        list(model.stream([{"role": "user", "content": "Hi"}], threading.Event()))
    assert "401" in failure.value.reason
    model.close()


def test_fallback_to_local_answers_when_the_server_is_down(config, engines, synth_question, tmp_path):
    down = config.replace("llm", backend="openai", base_url=f"http://127.0.0.1:{free_port()}/v1",
                          fallback_to_local=True)
    chat = make_chat_model(down)
    assert isinstance(chat, FallbackChatModel)
    turns = run_turn(down, engines, chat, synth_question(QUESTION), tmp_path / "reply.wav")
    assert len(turns) == 1, turns
    assert turns[0]["backend"] == "local"
    assert turns[0]["reply"].strip() and "can't reach" not in turns[0]["reply"]
    assert reply_audio_s(tmp_path / "reply.wav") > 0.5


def test_counts_tokens_without_a_tokenizer(remote):
    model = OpenAIChatModel(remote.llm)
    assert model.count_tokens("") == 1
    assert 20 <= model.count_tokens("x" * 90) <= 40
    assert model.context_tokens == remote.llm.context_tokens
    model.close()


def cli(*args, cwd: Path, env=None):
    return subprocess.run([sys.executable, "-m", "voice", *args], capture_output=True, text=True, timeout=240,
                          cwd=cwd, env=env)


def test_cli_llm_url_answers_through_the_server(server, synth_question, tmp_path):
    server.ensure_running()
    proc = cli("--input", str(synth_question(QUESTION)), "--output", "r.wav", "--fast", "--llm-url", server.url,
               cwd=tmp_path, env={**os.environ, KEY_ENV: API_KEY})
    assert proc.returncode == 0, proc.stderr
    replies = [line for line in proc.stdout.splitlines() if line.startswith("assistant: ")]
    assert len(replies) == 1 and len(replies[0]) > 12 and "can't reach" not in replies[0], proc.stdout
    assert reply_audio_s(tmp_path / "r.wav") > 0.5


def test_cli_server_down_is_a_spoken_message_not_a_traceback(synth_question, tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    proc = cli("--input", str(synth_question(QUESTION)), "--output", "r.wav", "--fast", "--llm-url", url,
               "--llm-model", "any", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"assistant: I can't reach the language model at {url}." in proc.stdout.splitlines()
    assert "Traceback" not in proc.stderr
    assert reply_audio_s(tmp_path / "r.wav") > 0.5


def test_cli_bad_llm_url_is_a_usage_error(tmp_path):
    proc = cli("--llm-url", "ftp://example", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--llm-url must be an http(s) URL" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
