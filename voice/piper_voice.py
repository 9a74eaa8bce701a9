"""Piper, spoken as it is synthesized: the voice's graph in two, its vocoder run a piece at a time.

A Piper voice is one ONNX graph: text encoder, durations and flow give a latent sequence `z`
(one frame per 256 samples for the usual voices), and a HiFi-GAN vocoder turns `z` into audio,
60 % of the time of a sentence. The graph is cut at the vocoder's input (the tensor its first
convolution, `dec.conv_pre`, reads), and the vocoder is run on the first FIRST_FRAMES of `z`, then
on pieces three times as long as the one before (up to MAX_FRAMES), each with PAD_FRAMES of `z` on
either side and only its own part kept: the samples are the whole vocoder's to float rounding (~120 dB
under them), and the first audio of "The capital of France is Paris." comes after 45 ms, not 86
(an Intel host, 2 cores). The user waits for the first sound of a reply; the rest of a piece is
ready long before the part before it has played.

Loudness: Piper scales each sentence so that its loudest sample is at full scale, which takes the
whole sentence. A voice's raw output is as loud from sentence to sentence (RMS within 5 dB over
20 replies' sentences) while its peaks are not (0.36-0.76), so each piece is scaled by VOICE_PEAK
instead: steadier loudness, and no wait. A sample still over full scale is clipped.

A voice whose graph cannot be cut there (another architecture) is spoken a sentence at a time,
as Piper does, with one warning. Both graphs are optimized once by onnxruntime and kept in the
user's cache directory (`_sessions`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np
from platformdirs import user_cache_dir

from . import APP_NAME
from .config import TtsConfig
from .heap import release_freed_memory
from .models import ModelError, piper_voice_file
from .tts import Sound

log = logging.getLogger(__name__)

VOCODER_WEIGHT = "dec.conv_pre.weight"  # the vocoder's first convolution: its other input is `z`
FIRST_FRAMES = 20  # ~230 ms of audio: the first piece
GROWTH = 3  # each piece this many times the one before: fewer runs, each ready long before it plays
MAX_FRAMES = 180  # ~2 s: the vocoder's memory is that of a piece, not of the longest sentence
PAD_FRAMES = 10  # the vocoder's reach in frames of z (at 5: 37 dB under the samples, at 10: ~120)
VOICE_PEAK = 0.8  # the bundled voice's raw sentences peak at 0.36-0.76 (48 sentences)


@dataclass(frozen=True)
class Scales:
    """Piper's synthesis scales (the voice's own config gives the defaults)."""

    noise: float
    length: float
    noise_w: float


class PiperSynthesizer:
    def __init__(self, config: TtsConfig) -> None:
        from piper import PiperVoice
        from piper.config import PiperConfig

        path = piper_voice_file(config.voice)
        try:
            voice_config = PiperConfig.from_dict(json.loads(Path(f"{path}.json").read_text(encoding="utf-8")))
            self.encoder, self.vocoder = _sessions(path)
        except Exception as e:  # onnxruntime raises its own exception types
            raise ModelError(f"cannot load the Piper voice at {path}: {e}") from e
        self.voice = PiperVoice(session=self.encoder, config=voice_config)  # its phonemizer and config
        self.sample_rate = voice_config.sample_rate
        self.scales = Scales(voice_config.noise_scale, voice_config.length_scale * config.length_scale,
                             voice_config.noise_w_scale)
        self.gain = config.volume / VOICE_PEAK
        self._multi_speaker = voice_config.num_speakers > 1
        self._z = self.vocoder.get_inputs()[0].name if self.vocoder else ""
        log.info("tts: Piper voice %s (%d Hz)%s", path, self.sample_rate,
                 "" if self.vocoder else ", a sentence at a time")

    def synthesize(self, text: str, scales: Scales | None = None, streamed: bool = True) -> Iterator[Sound]:
        """`text` in blocks as they are ready (see the module's docstring); not `streamed`: a block
        a sentence, its vocoder run at once (the naive pipeline of scripts/bench)."""
        for pcm, begins, ends in self._raw(text, scales or self.scales, streamed):
            yield Sound(np.clip(pcm * self.gain, -1.0, 1.0).astype(np.float32), begins, ends)

    def whole(self, text: str, steady: bool = False) -> np.ndarray:
        """All of `text` in one array, its loudest sample at full scale (as Piper itself gives a
        sentence); `steady`: without Piper's random noise, the same samples at every run. For the
        questions of tests and benchmarks."""
        scales = replace(self.scales, noise=0.0, noise_w=0.0) if steady else self.scales
        pcm = np.concatenate([pcm for pcm, _, _ in self._raw(text, scales, streamed=False)])
        return (pcm / max(float(np.abs(pcm).max()), 1e-8)).astype(np.float32)

    def _raw(self, text: str, scales: Scales, streamed: bool) -> Iterator[tuple[np.ndarray, float, float]]:
        """The voice's own output for `text`, with the fractions of the text's audio each block spans."""
        sentences = [ids for ids in map(self.voice.phonemes_to_ids, self.voice.phonemize(text)) if ids]
        for n, ids in enumerate(sentences):
            for pcm, begins, ends in self._sentence(ids, scales, streamed):
                yield pcm, (n + begins) / len(sentences), (n + ends) / len(sentences)

    def _sentence(self, ids: list[int], scales: Scales, streamed: bool) -> Iterator[tuple[np.ndarray, float, float]]:
        inputs = {"input": np.array([ids], np.int64), "input_lengths": np.array([len(ids)], np.int64),
                  "scales": np.array([scales.noise, scales.length, scales.noise_w], np.float32)}
        if self._multi_speaker:
            inputs["sid"] = np.array([self.voice.config.default_speaker_id], np.int64)
        out = self.encoder.run(None, inputs)[0]
        if self.vocoder is None:  # the whole graph: a sentence's audio
            yield out.reshape(-1), 0.0, 1.0
            return
        frames = out.shape[2]
        for lo, hi in pieces(frames) if streamed else [(0, frames)]:
            a, b = max(0, lo - PAD_FRAMES), min(frames, hi + PAD_FRAMES)
            feed = {self._z: out[:, :, a:b], **({"sid": inputs["sid"]} if self._multi_speaker else {})}
            pcm = self.vocoder.run(None, feed)[0].reshape(-1)
            hop = len(pcm) // (b - a)
            yield pcm[(lo - a) * hop:(hi - a) * hop], lo / frames, hi / frames


def pieces(frames: int) -> list[tuple[int, int]]:
    """The spans of z the vocoder runs on: FIRST_FRAMES, then each GROWTH times the one before, up to MAX_FRAMES."""
    spans, lo, size = [], 0, FIRST_FRAMES
    while lo < frames:
        spans.append((lo, min(frames, lo + size)))
        lo, size = lo + size, min(GROWTH * size, MAX_FRAMES)
    return spans


def _sessions(path: Path):
    """onnxruntime sessions (the encoder, the vocoder) for the voice at `path`, or (the whole graph,
    None) if it cannot be cut at the vocoder. onnxruntime optimizes a graph at every load (0.81 s of
    launch on a slower host); the first load keeps the optimized graphs in the user's cache
    directory and later ones read them as they are (0.19 s, the same samples out, as fast). Saved at
    the "extended" level, which holds no layout specific to this CPU. Named after the voice file
    (size, mtime) and onnxruntime's version; other versions of them there are removed. A cache that
    cannot be written or read is passed by (one warning)."""
    import onnxruntime

    stat = path.stat()
    folder = Path(user_cache_dir(APP_NAME, appauthor=False))
    stem = f"{path.stem}-{stat.st_size}-{int(stat.st_mtime)}-ort{onnxruntime.__version__}"
    cut = {part: folder / f"{stem}-{part}.onnx" for part in ("encoder", "vocoder")}
    whole = folder / f"{stem}-whole.onnx"
    for kept in (list(cut.values()), [whole]):
        if all(p.exists() for p in kept):
            try:
                sessions = [_session(p) for p in kept]
                _remove_stale(path, folder, kept)
                return sessions[0], sessions[1] if len(sessions) > 1 else None
            except Exception as e:  # onnxruntime raises its own exception types
                log.warning("tts: the cached voice graph in %s cannot be read (%s); optimizing it again", folder, e)
                for p in kept:
                    with contextlib.suppress(OSError):
                        p.unlink()
    graphs = _cut(path)
    if graphs is None:
        log.warning("tts: the voice %s cannot be cut at its vocoder; it is spoken a sentence at a time", path)
        sessions = _optimized(path.read_bytes(), whole), None
    else:
        sessions = _optimized(graphs[0], cut["encoder"]), _optimized(graphs[1], cut["vocoder"])
    del graphs
    release_freed_memory()  # the cut's copies of the graph: ~90 MB glibc would keep for the session
    return sessions


def _cut(path: Path) -> tuple[bytes, bytes] | None:
    """The voice's graph as (the encoder up to `z`, the vocoder from it), or None where no node
    reads VOCODER_WEIGHT."""
    import onnx
    from onnx.utils import Extractor

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))  # types for the cut's new inputs
    graph = model.graph
    z = next((node.input[0] for node in graph.node if VOCODER_WEIGHT in node.input), None)
    if z is None:
        return None
    inputs = [i.name for i in graph.input]
    try:
        extractor = Extractor(model)
        encoder = extractor.extract_model(inputs, [z])
        vocoder = extractor.extract_model([z, *(["sid"] if "sid" in inputs else [])], [graph.output[0].name])
        for part in (encoder, vocoder):
            onnx.checker.check_model(part)
    except Exception as e:  # onnx raises its own exception types
        log.warning("tts: cutting the voice's graph failed: %s", e)
        return None
    return encoder.SerializeToString(), vocoder.SerializeToString()


def _options(level):
    """Session options: onnxruntime's worker threads sleep between runs (by default they spin after
    each, and on two cores that took the CPU from the LLM writing the next sentence: first-sentence
    synthesis 67-85 ms instead of 88-145 ms while it wrote); and no memory patterns, which plan one
    block per input length, so that its arena kept 147-204 MB for the longest piece spoken so far
    (14 words) instead of 93-97 MB (as fast: 0.8 and -0.2 ms a sentence, paired, on an AVX-512 AMD host)."""
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.enable_mem_pattern = False
    opts.graph_optimization_level = level
    return opts


def _session(kept: Path):
    """A session on a graph optimized before."""
    import onnxruntime

    return onnxruntime.InferenceSession(str(kept), sess_options=_options(onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL),
                                        providers=["CPUExecutionProvider"])


def _optimized(graph: bytes, kept: Path):
    """A session on `graph` optimized, read back from `kept`, where it is saved (renamed once whole:
    launches may race)."""
    import onnxruntime

    level, providers = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, ["CPUExecutionProvider"]
    partial = kept.with_name(f"{kept.name}.{os.getpid()}.part")
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        saving = _options(level)
        saving.optimized_model_filepath = str(partial)
        onnxruntime.InferenceSession(graph, sess_options=saving, providers=providers)
        partial.replace(kept)
        return _session(kept)  # a session made from bytes holds ~85 MB more than one read from its file
    except Exception as e:  # a read-only or full disk, or a broken voice (which the load below tells)
        not_kept = e
        with contextlib.suppress(OSError):
            partial.unlink()
    session = onnxruntime.InferenceSession(graph, sess_options=_options(level), providers=providers)
    log.warning("tts: cannot keep the optimized voice graph in %s: %s", kept.parent, not_kept)
    return session


def _remove_stale(path: Path, folder: Path, kept: list[Path]) -> None:
    """Graphs kept for other versions of this voice file or of onnxruntime (~60 MB each)."""
    for old in folder.glob(f"{path.stem}-[0-9]*-[0-9]*-ort*.onnx"):
        if old not in kept:
            with contextlib.suppress(OSError):
                old.unlink()
