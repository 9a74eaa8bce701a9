"""Memory through the pipeline and the CLI: turns survive a restart; --forget deletes them; the file is private."""

import os
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import soundfile

from conftest import normalise
from talk import spoken, talk
from test_memory_store import mode
from voice.capture import FileSource
from voice.config import MemoryConfig
from voice.history import Turn
from voice.memory import MemoryStore, memory_path
from voice.pipeline import Pipeline
from voice.playback import WavSink


def test_pipeline_turns_survive_a_restart(engines, config, synth_question, tmp_path):
    db = tmp_path / "memory.sqlite3"
    memory = MemoryStore(db)
    run = talk(spoken(synth_question, tmp_path / "q.wav", "My name is Alice.", "What is seventeen times two?"),
               engines, config, tmp_path, memory=memory)
    memory.close()
    assert [t.get("reply") for t in run.turns] and all(t.get("reply") for t in run.turns), run.turns

    restarted = MemoryStore(db)  # a new process would open the same file
    stored = restarted.load()
    assert normalise(stored[0].user) == "my name is alice" and "17 times 2" in normalise(stored[1].user)
    assert stored[1].assistant == "17 times 2 is 34."
    second = talk(spoken(synth_question, tmp_path / "q2.wav", "What is my name?"), engines, config, tmp_path,
                  memory=restarted)
    history = [m["content"] for m in second.pipeline.conversation.messages("again")]
    assert normalise(history[1]) == "my name is alice", "the LLM sees the turns from before the restart"
    assert "17 times 2 is 34." in history
    assert len(restarted.load()) == 3, "the new turn is stored too"
    restarted.close()


def test_the_model_reads_a_restored_conversation_before_the_first_question(engines, config, tmp_path):
    """After a restart the history is long; reading it when the first question comes would
    delay that answer by seconds. The LLM reads it as the pipeline starts, while all is quiet."""
    memory = MemoryStore(tmp_path / "memory.sqlite3")
    for i in range(12):
        memory.append(Turn(f"My locker number is {i} and it is painted ultramarine.", f"Noted: locker {i}."))
    silence = tmp_path / "silence.wav"
    soundfile.write(str(silence), np.zeros(16000 * 3, np.int16), 16000)
    pipeline = Pipeline(config, engines, FileSource(silence, config.audio.frame_ms, realtime=True),
                        WavSink(tmp_path / "out.wav", engines.synthesizer.sample_rate), half_duplex=False, memory=memory)
    llama = engines.chat.llama
    read = threading.Event()

    def cache_text() -> str:
        return llama.detokenize(llama.input_ids[:llama.n_tokens].tolist()).decode(errors="replace")

    pipeline.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not read.is_set():
        if "locker number is 11" in cache_text():
            read.set()
        time.sleep(0.1)
    pipeline.stop()
    memory.close()
    assert read.is_set(), cache_text()[-300:]
    assert "locker number is 0 " in cache_text(), "all of it, oldest first"


def test_cli_remembers_then_forgets(synth_question, tmp_path):
    # conftest points XDG_DATA_HOME at a fresh directory: the default location, but not the real one
    db = memory_path(MemoryConfig(enabled=True, path=""))
    assert str(db).startswith(os.environ["XDG_DATA_HOME"])
    question = synth_question("What is twelve times twelve?")
    proc = subprocess.run([sys.executable, "-m", "voice", "--input", str(question), "--output",
                           str(tmp_path / "r.wav"), "--fast"], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "assistant [arithmetic]: 12 times 12 is 144." in proc.stdout.splitlines()
    assert mode(db) == 0o600
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT assistant FROM turns").fetchall() == [("12 times 12 is 144.",)]

    proc = subprocess.run([sys.executable, "-m", "voice", "--forget"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "forgot" in proc.stdout and not db.exists()
    proc = subprocess.run([sys.executable, "-m", "voice", "--forget"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "no stored conversation" in proc.stdout


def test_memory_can_be_turned_off_and_a_bad_file_is_one_line(synth_question, tmp_path):
    question = synth_question("What is twelve times twelve?")
    off = tmp_path / "off.toml"
    off.write_text(f'[memory]\nenabled = false\npath = "{tmp_path / "never.sqlite3"}"\n')
    proc = subprocess.run([sys.executable, "-m", "voice", "--config", str(off), "--input", str(question),
                           "--output", str(tmp_path / "r.wav"), "--fast"], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "never.sqlite3").exists()

    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(b"this is not a database" * 100)
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f'[memory]\npath = "{bad}"\n')
    proc = subprocess.run([sys.executable, "-m", "voice", "--config", str(cfg), "--input", str(question), "--fast"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 7, proc.stderr
    assert "memory database" in proc.stderr and "--forget" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
