"""Text to speech: Piper behind a Synthesizer protocol, and the TTS stage."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np
from platformdirs import user_cache_dir

from . import APP_NAME
from .config import TtsConfig
from .frames import ReplyEnd, ReplySentence, SpeechAudio, WarmUp
from .models import ModelError, piper_voice_file
from .stage import EventBus, Stage

log = logging.getLogger(__name__)

WARM_UP_TEXT = "Hello."
# Piper begins each sentence with 15-55 ms under -60 dBFS (the first 20 ms at -80 to -90): silence
# that, at the start of a reply, is only latency. The first piece of a reply is played from
# LEAD_KEEP_MS before its first sample over LEAD_FLOOR_DBFS; later pieces keep their lead, the gap
# between two sentences.
LEAD_FLOOR_DBFS = -60.0
LEAD_KEEP_MS = 5


class Synthesizer(Protocol):
    sample_rate: int

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        """float32 mono audio at `sample_rate`, one array per sentence of `text`."""
        ...


class PiperSynthesizer:
    def __init__(self, config: TtsConfig) -> None:
        path = piper_voice_file(config.voice)
        try:
            self.voice = _load_voice(path)
        except Exception as e:  # onnxruntime raises its own exception types
            raise ModelError(f"cannot load the Piper voice at {path}: {e}") from e
        self.sample_rate = self.voice.config.sample_rate
        from piper import SynthesisConfig

        self.syn_config = SynthesisConfig(length_scale=config.length_scale, volume=config.volume)
        log.info("tts: Piper voice %s (%d Hz)", path, self.sample_rate)

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        for chunk in self.voice.synthesize(text, self.syn_config):
            yield chunk.audio_float_array


def without_lead(pcm: np.ndarray, sample_rate: int) -> np.ndarray:
    """`pcm` from LEAD_KEEP_MS before its first sample over LEAD_FLOOR_DBFS (all of it if none is)."""
    loud = np.flatnonzero(np.abs(pcm) > 10 ** (LEAD_FLOOR_DBFS / 20))
    if not len(loud):
        return pcm
    return pcm[max(0, loud[0] - sample_rate * LEAD_KEEP_MS // 1000):]


def _load_voice(path: Path):
    """PiperVoice.load, but with onnxruntime's worker threads sleeping between runs: by default
    they spin after each sentence, and on two cores that takes the CPU from the LLM writing the
    next one (measured: first-sentence synthesis 67-85 ms instead of 88-145 ms while it writes);
    without onnxruntime's memory patterns, which plan one block per sentence length, so that its
    arena kept 147-204 MB for the longest piece spoken so far (14 words) instead of 93-97 MB
    (synthesis as fast: 0.8 and -0.2 ms a sentence, paired, on an AVX-512 AMD host); and with the
    optimized graph kept between launches (`_session`)."""
    from piper import PiperVoice
    from piper.config import PiperConfig

    config = PiperConfig.from_dict(json.loads(Path(f"{path}.json").read_text(encoding="utf-8")))
    return PiperVoice(session=_session(path), config=config)


def _session(path: Path):
    """An onnxruntime session for the voice. onnxruntime optimizes the graph at every load: 0.81 s
    of launch on the slower host. The first load saves the optimized graph in the user's cache
    directory and later ones read it as it is: 0.19 s, the same samples out, synthesis as fast.
    Saved at the "extended" level, which holds no layout specific to this CPU. Named after the
    voice file (size, mtime) and onnxruntime's version; a cache that cannot be written or read is
    passed by (one warning)."""
    import onnxruntime

    levels, providers = onnxruntime.GraphOptimizationLevel, ["CPUExecutionProvider"]

    def options(level):
        opts = onnxruntime.SessionOptions()
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.enable_mem_pattern = False  # see _load_voice
        opts.graph_optimization_level = level
        return opts

    stat = path.stat()
    cached = (Path(user_cache_dir(APP_NAME, appauthor=False))
              / f"{path.stem}-{stat.st_size}-{int(stat.st_mtime)}-ort{onnxruntime.__version__}.onnx")
    if cached.exists():
        try:
            return onnxruntime.InferenceSession(str(cached), sess_options=options(levels.ORT_DISABLE_ALL),
                                                providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types
            log.warning("tts: the cached voice graph %s cannot be read (%s); optimizing it again", cached, e)
            with contextlib.suppress(OSError):
                cached.unlink()
    partial = cached.with_name(f"{cached.name}.{os.getpid()}.part")  # renamed once whole: launches may race
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        saving = options(levels.ORT_ENABLE_EXTENDED)
        saving.optimized_model_filepath = str(partial)
        session = onnxruntime.InferenceSession(str(path), sess_options=saving, providers=providers)
        partial.replace(cached)
        return session
    except Exception as e:  # a read-only or full disk, or a broken voice (which the load below tells)
        not_kept = e
        with contextlib.suppress(OSError):
            partial.unlink()
    session = onnxruntime.InferenceSession(str(path), sess_options=options(levels.ORT_ENABLE_EXTENDED),
                                           providers=providers)
    log.warning("tts: cannot keep the optimized voice graph in %s: %s", cached.parent, not_kept)
    return session


class TtsStage(Stage):
    """ReplySentence in, SpeechAudio out; ReplyEnd passes through in order."""

    def __init__(self, synthesizer: Synthesizer, inbox: queue.Queue, outbox: queue.Queue,
                 stop: threading.Event, bus: EventBus, is_cancelled=lambda turn_id: False) -> None:
        super().__init__("tts", inbox, outbox, stop, bus)
        self.synthesizer = synthesizer
        self.is_cancelled = is_cancelled

    def handle(self, item: ReplySentence | ReplyEnd | WarmUp) -> None:
        if isinstance(item, WarmUp):  # see Pipeline.start
            for _pcm in self.synthesizer.synthesize(WARM_UP_TEXT):
                pass
            return
        if isinstance(item, ReplyEnd):
            self.emit(item)
            return
        if self.is_cancelled(item.turn_id):
            return
        first = item.index == 0
        for pcm in self.synthesizer.synthesize(item.text):
            if self.is_cancelled(item.turn_id) or self.stop.is_set():
                return
            now = time.monotonic()
            if first:  # the reply's first sound: what the user waits for
                pcm, first = without_lead(pcm, self.synthesizer.sample_rate), False
                self.bus.emit("tts_audio", item.turn_id, item.text, t=now)
            self.emit(SpeechAudio(item.turn_id, item.index, item.text, pcm, self.synthesizer.sample_rate, now))
