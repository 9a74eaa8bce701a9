"""What scripts/bench measures outside its replays: launch to `listening`, peak RSS, live idle CPU.

The assistant runs as its own process here (`python -m voice`), live on a private PulseAudio
from ../shared/tools/vdev.sh, or replaying a file; its peak RSS is read from /proc.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile

from voice.capture import read_audio

log = logging.getLogger("bench")

REPO = Path(__file__).resolve().parent.parent
_VENV_PY = REPO / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PY) if _VENV_PY.exists() else sys.executable
VDEV = Path(os.environ.get("VOICE_VDEV", REPO.parent / "shared" / "tools" / "vdev.sh"))


def vm_hwm_mb(pid: int) -> float | None:
    """Peak resident set of a live process so far (VmHWM), in MB.

    Not ru_maxrss of the child: after a vfork/exec Linux reports the parent's peak there."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def watch_peak_rss(proc: subprocess.Popen, timeout_s: float) -> float | None:
    """Poll VmHWM until the child exits (killed after `timeout_s`); the last reading is its peak."""
    peak, deadline = None, time.monotonic() + timeout_s
    while proc.poll() is None:
        if time.monotonic() > deadline:
            log.error("%s still running after %.0f s; killed", proc.args, timeout_s)
            proc.kill()
            break
        hwm = vm_hwm_mb(proc.pid)
        if hwm is not None:
            peak = hwm if peak is None else max(peak, hwm)
        time.sleep(0.05)
    proc.wait()
    return None if peak is None else round(peak, 1)


def replay_rss(paths: list[str], work: Path, count: int = 4) -> dict:
    """Peak RSS of `python -m voice` answering a few questions from a file (as fast as it can)."""
    pcm = np.concatenate([read_audio(p) for p in paths[:count]])
    path = work / "rss_input.wav"
    soundfile.write(str(path), pcm, 16000, subtype="PCM_16")
    proc = subprocess.Popen([PYTHON, "-m", "voice", "--input", str(path), "--output",
                             str(work / "rss_output.wav"), "--fast"], cwd=REPO, env=fresh_user(os.environ, work),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # stderr: a few log lines at most
    peak = watch_peak_rss(proc, timeout_s=300)
    err = proc.stderr.read().decode(errors="replace")[-400:] if proc.returncode else ""
    return {"peak_rss_mb": peak, "exit_code": proc.returncode, "questions": min(count, len(paths)),
            "how": "python -m voice --input (first questions) --fast, VmHWM of the child", "stderr_tail": err}


def fresh_user(env: dict, home: Path) -> dict:
    """`env` with an empty data directory: no conversation restored from memory (reading a long
    one takes the first seconds after launch), and the real one left alone."""
    return dict(env, XDG_DATA_HOME=str(home / "data"))


class PrivatePulse:
    """A private PulseAudio from ../shared/tools/vdev.sh, in its own runtime dir; stopped on exit."""

    def __init__(self) -> None:
        self.env = dict(os.environ, VDEV_XDG=f"/tmp/xdg-bench-{os.getpid()}")
        self.client_env: dict | None = None

    def __enter__(self) -> "PrivatePulse":
        subprocess.run([str(VDEV), "up"], env=self.env, check=True, capture_output=True, timeout=30)
        out = subprocess.run([str(VDEV), "env"], env=self.env, check=True, capture_output=True, text=True).stdout
        self.client_env = dict(self.env, **dict(re.findall(r"^export (\w+)=(.*)$", out, re.M)))
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run([str(VDEV), "down"], env=self.env, capture_output=True, timeout=30)
        shutil.rmtree(self.env["VDEV_XDG"], ignore_errors=True)


IDLE_SETTLE_S = 2.0  # idle CPU is measured from this long after `listening`


def silence_file(path: Path, seconds: float) -> Path:
    """Room-quiet input: -60 dBFS white noise (its peaks at -48) rather than digital zeros."""
    noise = np.random.default_rng(0).normal(0, 33, int(seconds * 16000)).astype(np.int16)
    soundfile.write(str(path), noise, 16000, subtype="PCM_16")
    return path


def launch_once(env: dict, idle_s: float, work: Path, timeout_s: float = 60) -> dict:
    """Start `python -m voice` live; seconds until it prints `listening`, then idle CPU (the
    microphone hearing a quiet room, -60 dBFS of noise, not digital silence) and peak RSS."""
    import psutil

    t0 = time.monotonic()
    proc = subprocess.Popen([PYTHON, "-m", "voice"], cwd=REPO, env=dict(env, PYTHONUNBUFFERED="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    ready = threading.Event()
    lines: list[str] = []

    def read() -> None:
        for raw in proc.stdout:
            lines.append(raw.decode(errors="replace").rstrip())
            if "listening" in lines[-1]:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    result: dict = {}
    if ready.wait(timeout_s):
        result["launch_to_listening_s"] = round(time.monotonic() - t0, 3)
        ps = psutil.Process(proc.pid)
        if idle_s:
            room_tone = silence_file(work / "room.wav", IDLE_SETTLE_S + idle_s + 2)
            room = subprocess.Popen(["paplay", "--device=mic_feed", str(room_tone)], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(IDLE_SETTLE_S)  # the LLM reads its system prompt once listening began: start-up, not idle
                cpu0, wall0 = sum(ps.cpu_times()[:2]), time.monotonic()
                time.sleep(idle_s)
                cpu = sum(ps.cpu_times()[:2]) - cpu0
                result["idle_cpu_pct_of_one_core"] = round(100 * cpu / (time.monotonic() - wall0), 2)
            except psutil.NoSuchProcess:
                result["error"] = "the assistant exited while idle: " + " | ".join(lines[-5:])
            finally:  # the room tone stops whatever happened
                room.kill()
                room.wait()
    else:
        result["error"] = "no `listening` within %.0f s: %s" % (timeout_s, " | ".join(lines[-5:]))
    hwm = vm_hwm_mb(proc.pid)
    result["peak_rss_mb"] = None if hwm is None else round(hwm, 1)
    proc.send_signal(signal.SIGINT)
    watch_peak_rss(proc, timeout_s=15)
    result["exit_code"] = proc.returncode
    return result


def measure_launch(runs: int, idle_s: float) -> dict:
    """Launch to `listening` in live mode on a private PulseAudio; in-process load_engines if there is none."""
    try:
        with PrivatePulse() as pulse, tempfile.TemporaryDirectory() as home:
            env = fresh_user(pulse.client_env, Path(home))
            results = [launch_once(env, idle_s if i == runs - 1 else 0.0, Path(home)) for i in range(runs)]
    except (OSError, subprocess.SubprocessError) as e:
        log.warning("no private PulseAudio (%s): timing in-process load_engines instead", e)
        return launch_in_process()
    times = [r["launch_to_listening_s"] for r in results if "launch_to_listening_s" in r]
    return {"how": "subprocess `python -m voice` (live mode, private PulseAudio from vdev.sh) until it prints "
                   "`listening`", "runs": results, "median_s": statistics.median(times) if times else None,
            "idle_cpu_live_pct_of_one_core": results[-1].get("idle_cpu_pct_of_one_core"),
            "idle_how": f"process CPU time over {idle_s:g} s of -60 dBFS noise at the microphone, from "
                        f"{IDLE_SETTLE_S:g} s after `listening`",
            "peak_rss_live_idle_mb": max((r.get("peak_rss_mb") or 0) for r in results) or None}


def launch_in_process() -> dict:
    from voice.config import load_config
    from voice.pipeline import load_engines

    t0 = time.monotonic()
    load_engines(load_config())
    took = round(time.monotonic() - t0, 3)
    return {"how": "in-process load_engines (no PulseAudio: NOT the time to `listening`)", "runs": [], "median_s": took}
