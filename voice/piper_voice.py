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

The flow before it (the normalizing flow that turns the prior's sample into `z`, 40-55 % of the
time before the vocoder) works on frames too, with a reach of FLOW_REACH frames: it is cut out as
well, and for the first piece it runs on only the frames that piece reaches; the rest of the
sentence's `z` comes from one run over all of it. The first piece's samples are the whole's to
float rounding again, and its first audio comes ~9 ms sooner on an AMD host (35 ms instead of 45
for the first clauses of replies, measured paired).

A voice whose graph cannot be cut at its vocoder (another architecture) is spoken a sentence at a
time, as Piper does, with one warning; one whose flow is not found (other node names) is cut at
its vocoder alone. The graphs are optimized once by onnxruntime and kept in the user's cache
directory (`_sessions`).
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
FLOW_PREFIX = "/flow/"  # the names of the flow's nodes, as torch exports a VITS voice
FLOW_REACH = 32  # the flow's reach in frames: 4 couplings of 4 convolutions of width 5 (VITS)
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
            self.encoder, self.flow, self.vocoder = _sessions(path)
        except Exception as e:  # onnxruntime raises its own exception types
            raise ModelError(f"cannot load the Piper voice at {path}: {e}") from e
        self.voice = PiperVoice(session=self.encoder, config=voice_config)  # its phonemizer and config
        self.sample_rate = voice_config.sample_rate
        self.scales = Scales(voice_config.noise_scale, voice_config.length_scale * config.length_scale,
                             voice_config.noise_w_scale)
        self.gain = config.volume / VOICE_PEAK
        self._multi_speaker = voice_config.num_speakers > 1
        self._z = self.vocoder.get_inputs()[0].name if self.vocoder else ""
        self._flow_inputs = [i.name for i in self.flow.get_inputs()] if self.flow else []
        self._prior_outputs = [o.name for o in self.encoder.get_outputs()]
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
        out = self.encoder.run(None, inputs)
        if self.vocoder is None:  # the whole graph: a sentence's audio
            yield out[0].reshape(-1), 0.0, 1.0
            return
        if self.flow is None:  # z from the encoder
            z, prior, frames = out[0], {}, out[0].shape[2]
        else:  # the flow's inputs: what the encoder gave (or the voice's own inputs)
            given = {**inputs, **dict(zip(self._prior_outputs, out))}
            z, prior = None, {name: given[name] for name in self._flow_inputs}
            frames = max(t.shape[-1] for t in prior.values() if t.ndim == 3)
        for n, (lo, hi) in enumerate(pieces(frames) if streamed else [(0, frames)]):
            a, b = max(0, lo - PAD_FRAMES), min(frames, hi + PAD_FRAMES)
            if z is None and n == 0 and b + FLOW_REACH < frames:  # the first piece's z, from the frames it reaches
                part = self._flow(prior, frames, b + FLOW_REACH)
            else:
                z = self._flow(prior, frames, frames) if z is None else z
                part = z
            feed = {self._z: part[:, :, a:b], **({"sid": inputs["sid"]} if self._multi_speaker else {})}
            pcm = self.vocoder.run(None, feed)[0].reshape(-1)
            hop = len(pcm) // (b - a)
            yield pcm[(lo - a) * hop:(hi - a) * hop], lo / frames, hi / frames

    def _flow(self, prior: dict[str, np.ndarray], frames: int, upto: int) -> np.ndarray:
        """z for the first `upto` of a sentence's `frames` (its tensors along frames cut there)."""
        feed = {name: t[..., :upto] if t.ndim == 3 and t.shape[-1] == frames else t for name, t in prior.items()}
        return self.flow.run(None, feed)[0]


def pieces(frames: int) -> list[tuple[int, int]]:
    """The spans of z the vocoder runs on: FIRST_FRAMES, then each GROWTH times the one before, up to MAX_FRAMES."""
    spans, lo, size = [], 0, FIRST_FRAMES
    while lo < frames:
        spans.append((lo, min(frames, lo + size)))
        lo, size = lo + size, min(GROWTH * size, MAX_FRAMES)
    return spans


# best first; a layout is taken from the cache only as it was kept for this version of the code
# (before the flow was cut out, "encoder" was the encoder with the flow: removed as stale)
LAYOUTS = (("prior", "flow", "vocoder"), ("prior-flow", "vocoder"), ("whole",))


def _sessions(path: Path):
    """onnxruntime sessions (the encoder, the flow, the vocoder) for the voice at `path`: (the
    encoder with the flow, None, the vocoder) where the flow cannot be found, (the whole graph,
    None, None) where it cannot be cut at the vocoder. onnxruntime optimizes a graph at every
    load (0.81 s of launch on a slower host); the first load keeps the optimized graphs in the
    user's cache directory and later ones read them as they are (0.19 s, the same samples out, as
    fast). Saved at the "extended" level, which holds no layout specific to this CPU. Named after
    the voice file (size, mtime) and onnxruntime's version; other versions of them there are
    removed. A cache that cannot be written or read is passed by (one warning)."""
    import onnxruntime

    stat = path.stat()
    folder = Path(user_cache_dir(APP_NAME, appauthor=False))
    stem = f"{path.stem}-{stat.st_size}-{int(stat.st_mtime)}-ort{onnxruntime.__version__}"
    for layout in LAYOUTS:
        kept = [folder / f"{stem}-{part}.onnx" for part in layout]
        if all(p.exists() for p in kept):
            try:
                sessions = [_session(p) for p in kept]
                _remove_stale(path, folder, kept)
                return _as_stages(sessions)
            except Exception as e:  # onnxruntime raises its own exception types
                log.warning("tts: the cached voice graph in %s cannot be read (%s); optimizing it again", folder, e)
                for p in kept:
                    with contextlib.suppress(OSError):
                        p.unlink()
    graphs = _cut(path)
    if "vocoder" not in graphs:
        log.warning("tts: the voice %s cannot be cut at its vocoder; it is spoken a sentence at a time", path)
    kept = [folder / f"{stem}-{part}.onnx" for part in graphs]
    sessions = [_optimized(graph, p) for graph, p in zip(graphs.values(), kept)]
    del graphs
    release_freed_memory()  # the cut's copies of the graph: ~90 MB glibc would keep for the session
    _remove_stale(path, folder, kept)
    return _as_stages(sessions)


def _as_stages(sessions: list):
    """(encoder, flow, vocoder) from a layout's sessions."""
    if len(sessions) == 3:
        return tuple(sessions)
    return sessions[0], None, sessions[1] if len(sessions) == 2 else None


def _cut(path: Path) -> dict[str, bytes]:
    """The voice's graph in the best of LAYOUTS it can be cut into: {"prior": up to the flow's
    inputs, "flow": from them to `z`, "vocoder": from `z`}, where no node reads VOCODER_WEIGHT
    {"whole": the graph}, and where the flow's nodes are not found {"prior-flow": up to `z`, "vocoder"}."""
    import onnx
    from onnx.utils import Extractor

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))  # types for the cut's new inputs
    graph = model.graph
    z = next((node.input[0] for node in graph.node if VOCODER_WEIGHT in node.input), None)
    if z is None:
        return {"whole": path.read_bytes()}
    inputs = [i.name for i in graph.input]
    flow_inputs = _flow_inputs(graph, z)
    try:
        extractor = Extractor(model)
        vocoder = extractor.extract_model([z, *(["sid"] if "sid" in inputs else [])], [graph.output[0].name])
        if flow_inputs:
            parts = {"prior": extractor.extract_model(inputs, [t for t in flow_inputs if t not in inputs]),
                     "flow": extractor.extract_model(flow_inputs, [z]), "vocoder": vocoder}
        else:
            log.warning("tts: the voice %s has no flow where it was looked for; its first sound comes later", path)
            parts = {"prior-flow": extractor.extract_model(inputs, [z]), "vocoder": vocoder}
        for part in parts.values():
            onnx.checker.check_model(part)
    except Exception as e:  # onnx raises its own exception types
        log.warning("tts: cutting the voice's graph failed: %s", e)
        return {"whole": path.read_bytes()}
    return {name: part.SerializeToString() for name, part in parts.items()}


def _flow_inputs(graph, z: str) -> list[str]:
    """The tensors the flow reads ([] where it has no FLOW_PREFIX nodes): its nodes are those that
    lead to `z` and come after a node of FLOW_PREFIX (its gating nodes have no such name)."""
    nodes = list(graph.node)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output}
    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(i)
    after = {i for i, node in enumerate(nodes) if node.name.startswith(FLOW_PREFIX)}
    todo = list(after)
    while todo:
        for out in nodes[todo.pop()].output:
            for j in consumers.get(out, []):
                if j not in after:
                    after.add(j)
                    todo.append(j)
    before, todo = set(), [producer[z]] if z in producer else []
    while todo:
        i = todo.pop()
        if i not in before:
            before.add(i)
            todo += [producer[name] for name in nodes[i].input if name in producer]
    flow = after & before
    constants = {init.name for init in graph.initializer}
    reads = []
    for i in sorted(flow):
        for name in nodes[i].input:
            if (name and name not in constants and name not in reads and producer.get(name) not in flow
                    and (name not in producer or nodes[producer[name]].op_type != "Constant")):
                reads.append(name)
    return reads


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
