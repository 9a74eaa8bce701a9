"""Piper cut at its flow and its vocoder: a sentence spoken in blocks, the same samples as at once,
the graphs kept in the user's cache directory between launches."""

import logging
import queue
import threading
from dataclasses import replace

import numpy as np
import onnx

from voice import piper_voice
from voice.frames import ReplySentence
from voice.models import piper_voice_file
from voice.piper_voice import FIRST_FRAMES, PiperSynthesizer
from voice.stage import EventBus
from voice.tts import TtsStage

LONG = "The Moon is about three hundred eighty four thousand kilometers away from the Earth."


def steady(synthesizer: PiperSynthesizer):
    return replace(synthesizer.scales, noise=0.0, noise_w=0.0)


def blocks(synthesizer: PiperSynthesizer, text: str, streamed: bool = True) -> list:
    return list(synthesizer.synthesize(text, steady(synthesizer), streamed=streamed))


def test_a_sentence_comes_in_blocks_with_the_samples_of_the_whole(engines):
    synthesizer = engines.synthesizer
    streamed, whole = blocks(synthesizer, LONG), blocks(synthesizer, LONG, streamed=False)
    assert len(whole) == 1 and len(streamed) >= 3
    hop = len(whole[0].pcm) // round(len(whole[0].pcm) / 256)  # samples per frame of z: 256 for this voice
    assert len(streamed[0].pcm) == FIRST_FRAMES * hop  # the first block: ~230 ms, soon
    assert streamed[0].begins == 0.0 and streamed[-1].ends == 1.0
    assert all(a.ends == b.begins for a, b in zip(streamed, streamed[1:]))  # they follow each other
    pcm = np.concatenate([b.pcm for b in streamed])
    assert len(pcm) == len(whole[0].pcm)
    assert np.abs(pcm - whole[0].pcm).max() < 1e-4  # float rounding, not seams


def test_loudness_is_the_voices_own_not_each_sentence_at_full_scale(engines, config):
    """Piper scales each sentence to full scale, which needs the whole sentence; the blocks are
    scaled alike (tts.volume / VOICE_PEAK), so the loudest sample of a sentence is where the voice
    put it."""
    synthesizer = engines.synthesizer
    peaks = [max(float(np.abs(b.pcm).max()) for b in blocks(synthesizer, text))
             for text in ("Of course!", "Yes, it is about twenty degrees today.")]
    assert all(0.3 < p <= 1.0 for p in peaks) and max(peaks) / min(peaks) > 1.5, peaks
    quieter = PiperSynthesizer(replace(config.tts, volume=0.5))
    pcm = np.concatenate([b.pcm for b in blocks(quieter, "Of course!")])
    assert np.allclose(pcm, np.concatenate([b.pcm for b in blocks(synthesizer, "Of course!")]) * 0.5, atol=1e-4)


def test_the_tts_stage_passes_each_block_on_as_it_comes(engines):
    outbox, bus, events = queue.Queue(), EventBus(), []
    bus.subscribe(events.append)
    stage = TtsStage(engines.synthesizer, queue.Queue(), outbox, threading.Event(), bus)
    stage.handle(ReplySentence(1, 0, LONG, 0.0))
    out = [outbox.get_nowait() for _ in range(outbox.qsize())]
    assert len(out) >= 3 and {o.text for o in out} == {LONG}
    assert out[0].begins == 0.0 and out[-1].ends == 1.0
    [first_audio] = [e for e in events if e.kind == "tts_audio"]  # at the first block, not the whole
    assert first_audio.t == out[0].t < out[1].t


def test_the_cut_graphs_are_kept_and_read_back(config, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = tmp_path / "voice-assistant"
    folder.mkdir()
    stale = folder / f"{piper_voice_file('bundled').stem}-1-2-ort0.1.onnx"  # another version's graph
    stale.write_bytes(b"old")
    first = PiperSynthesizer(config.tts)
    kept = sorted(folder.iterdir())
    assert [p.name.rsplit("-", 1)[1] for p in kept if p != stale] == ["flow.onnx", "prior.onnx", "vocoder.onnx"]
    assert not [p for p in kept if p.name.endswith(".part")]  # whole: no partial file left
    again = PiperSynthesizer(config.tts)
    assert not stale.exists()  # removed once the current ones were read
    same = [np.concatenate([b.pcm for b in blocks(s, "Hello there, how are you?")]) for s in (first, again)]
    assert np.array_equal(*same)
    vocoder = folder / kept[-1].name
    vocoder.write_bytes(b"not a graph")  # a damaged cache is read, found wanting and made again
    with caplog.at_level(logging.WARNING, logger="voice.piper_voice"):
        third = PiperSynthesizer(config.tts)
    assert "cannot be read" in caplog.text
    assert np.array_equal(same[0], np.concatenate([b.pcm for b in blocks(third, "Hello there, how are you?")]))
    assert vocoder.stat().st_size > 1_000_000


def test_a_cache_directory_that_cannot_be_written_is_passed_by(config, tmp_path, monkeypatch, caplog):
    (tmp_path / "voice-assistant").write_text("a file where the directory should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="voice.piper_voice"):
        synthesizer = PiperSynthesizer(config.tts)
    assert "cannot keep the optimized voice graph" in caplog.text
    assert sum(len(b.pcm) for b in synthesizer.synthesize("Hello there.")) > synthesizer.sample_rate // 2


def test_a_voice_that_cannot_be_cut_is_spoken_a_sentence_at_a_time(config, tmp_path, monkeypatch, caplog):
    """Another architecture: no vocoder where the cut looks for one."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    bundled = piper_voice_file("bundled")
    model = onnx.load(str(bundled))
    for tensor in model.graph.initializer:
        if tensor.name == piper_voice.VOCODER_WEIGHT:
            tensor.name = "renamed"
    for node in model.graph.node:
        node.input[:] = ["renamed" if i == piper_voice.VOCODER_WEIGHT else i for i in node.input]
    other = tmp_path / "other.onnx"
    onnx.save(model, str(other))
    other.with_name("other.onnx.json").write_text(bundled.with_name(f"{bundled.name}.json").read_text())
    with caplog.at_level(logging.WARNING, logger="voice.piper_voice"):
        synthesizer = PiperSynthesizer(replace(config.tts, voice=str(other)))
    assert "spoken a sentence at a time" in caplog.text and synthesizer.vocoder is None
    [sound] = synthesizer.synthesize("Hello there, how are you?")
    assert (sound.begins, sound.ends) == (0.0, 1.0) and len(sound.pcm) > synthesizer.sample_rate


def test_a_voice_without_a_flow_where_it_is_looked_for_is_cut_at_its_vocoder_alone(engines, config, tmp_path,
                                                                                   monkeypatch, caplog):
    """Node names another exporter would give: the flow is run with the encoder, the same samples out."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    bundled = piper_voice_file("bundled")
    model = onnx.load(str(bundled))
    for node in model.graph.node:
        node.name = node.name.replace(piper_voice.FLOW_PREFIX, "/other/")
    other = tmp_path / "other.onnx"
    onnx.save(model, str(other))
    other.with_name("other.onnx.json").write_text(bundled.with_name(f"{bundled.name}.json").read_text())
    with caplog.at_level(logging.WARNING, logger="voice.piper_voice"):
        synthesizer = PiperSynthesizer(replace(config.tts, voice=str(other)))
    assert "no flow where it was looked for" in caplog.text
    assert synthesizer.flow is None and synthesizer.vocoder is not None and engines.synthesizer.flow is not None
    same = [np.concatenate([b.pcm for b in blocks(s, LONG)]) for s in (synthesizer, engines.synthesizer)]
    assert len(same[0]) == len(same[1]) and np.abs(same[0] - same[1]).max() < 1e-4
