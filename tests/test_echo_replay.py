"""scripts/echo_replay on a recording made in the simulated room: it finds the user and when the
reply would have been held for them, and holds for nothing else."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from room import RATE
from test_echo import far_end, room_echo
from voice.capture import read_audio

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "echo_replay"


def replay(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def room_run(engines, shared_clips, tmp_path_factory):
    """A recording made in the simulated room: two replies, the user over the second; and when the user's voice begins."""
    folder = tmp_path_factory.mktemp("room_run")
    reply = far_end(engines, "Once upon a time there was a dragon who lived in a cave, and he liked gold "
                             "and he liked to sleep all day long in the dark.")
    gap = np.zeros(RATE, np.float32)
    speaker = np.concatenate([gap, reply, gap, reply, gap, gap, gap])  # the user ends within the recording
    user = read_audio(next(c for c in shared_clips if c["file"] == "LJ001-0004.wav")["path"])
    user_at = 2 * len(gap) + len(reply) + 2 * RATE  # two seconds into the second reply
    mic = room_echo(speaker)
    mic[user_at:user_at + len(user)] += user[:len(mic) - user_at].astype(np.float32) / 32768
    for name, audio in (("speaker_tap.wav", speaker), ("mic_tap.wav", mic), ("barge_interruption.wav", user / 32768)):
        soundfile.write(folder / name, np.clip(audio, -1, 1), RATE, subtype="PCM_16")
    return folder, (user_at + int(np.argmax(np.abs(user) > 300))) / RATE


def holds(done: subprocess.CompletedProcess) -> tuple[str, str]:
    """(the first hold after the user's onset in ms, or "None"; how many holds were away from any onset)"""
    assert done.returncode == 0, done.stderr
    return re.search(r"first hold after each onset \(ms\): \[(\S+)\] \| holds away from any: (\d+)", done.stdout).groups()


def test_echo_replay_finds_the_user_over_the_reply_and_the_hold(room_run):
    folder, voice_at = room_run
    done = replay(folder, "--interruptions", 1, "--lead-ms", 0)
    [onset] = map(float, re.search(r"user onsets \(s\): \[([^]]*)\]", done.stdout).group(1).split(","))
    assert abs(onset - voice_at) < 0.05, (onset, voice_at)
    first, stray = holds(done)
    assert first != "None" and 0 <= int(first) <= 400 and stray == "0", done.stdout


def test_echo_replay_takes_the_assistants_settings(room_run, tmp_path):
    folder, _ = room_run
    config = tmp_path / "user.toml"
    config.write_text("[vad]\nhold_ms = 0\n")  # no hold: the reply plays on until barge_in_ms interrupts it
    assert holds(replay(folder, "--interruptions", 1, "--lead-ms", 0, "--config", config)) == ("None", "0")
    config.write_text("[vad]\nhold_ms = 'soon'\n")
    done = replay(folder, "--config", config)
    assert done.returncode == 3 and "vad.hold_ms" in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_echo_replay_without_a_recording_exits_2(tmp_path):
    done = replay(tmp_path)
    assert done.returncode == 2 and "mic_tap.wav" in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_echo_replay_with_a_bad_setting_exits_2(tmp_path):
    for name in ("mic_tap.wav", "speaker_tap.wav"):
        soundfile.write(tmp_path / name, np.zeros(RATE, np.int16), RATE, subtype="PCM_16")
    for setting, says in (("NO_SUCH=1", "voice.echo has no NO_SUCH"), ("GAIN_RESEMBLES=high", "GAIN_RESEMBLES=high")):
        done = replay(tmp_path, "--set", setting)
        assert done.returncode == 2 and says in done.stderr and done.stderr.count("\n") == 1, done.stderr
