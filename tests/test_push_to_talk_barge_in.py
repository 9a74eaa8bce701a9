"""Push-to-talk as barge-in: a press while the assistant speaks stops the reply (Pipeline.interrupt),
and the question held after it is answered in full."""

from __future__ import annotations

import threading
import time

import numpy as np
import soundfile

from conftest import wer
from voice.capture import FileSource, read_audio
from voice.pipeline import Pipeline
from voice.playback import WavSink


def test_a_press_while_it_speaks_interrupts_and_the_next_held_question_is_answered(config, engines, synth_question,
                                                                                  tmp_path):
    """In-process, with the key presses sent as the key backend sends them (Pipeline.push_to_talk)."""
    first, second = "Tell me a long story about a brave dragon.", "What is the capital of France?"
    q1, q2 = read_audio(synth_question(first, lead_s=0.5, tail_s=0.3)), read_audio(synth_question(second, 0.3, 0.3))
    gap = np.zeros(8 * 16000, np.int16)
    wav = tmp_path / "two_questions.wav"
    soundfile.write(str(wav), np.concatenate([q1, gap, q2]), 16000, subtype="PCM_16")
    q1_end, q2_start = len(q1) / 16000, (len(q1) + len(gap)) / 16000
    q2_end = q2_start + len(q2) / 16000

    ptt = config.replace("hotkey", key="F9")
    sink = WavSink(tmp_path / "out.wav", engines.synthesizer.sample_rate, pace=True)
    pipeline = Pipeline(ptt, engines, FileSource(wav, realtime=True, tail_s=1.0), sink, half_duplex=True)
    events = []
    speaking = threading.Event()
    pipeline.bus.subscribe(lambda e: events.append(e) if e.kind != "level" else None)
    pipeline.bus.subscribe(lambda e: speaking.set() if e.kind == "playback_start" else None)

    def at(t: float) -> None:
        time.sleep(max(0.0, t0 + t - time.monotonic()))

    t0 = time.monotonic()
    pipeline.start()
    pipeline.push_to_talk(True)
    at(q1_end)
    pipeline.push_to_talk(False)
    assert speaking.wait(timeout=q2_start - q1_end - 1.5), "the first reply did not start playing in time"
    pipeline.push_to_talk(True)  # the key while it speaks: barge-in
    time.sleep(0.3)
    pipeline.push_to_talk(False)
    at(q2_start - 0.2)
    pipeline.push_to_talk(True)
    at(q2_end + 0.2)
    pipeline.push_to_talk(False)
    try:
        assert pipeline.wait(timeout=90), "the replay did not drain"  # the file ends, the second reply plays
    finally:
        pipeline.stop()

    transcripts = [e for e in events if e.kind == "transcript"]
    assert len(transcripts) == 2, [(e.kind, e.text) for e in events]
    assert wer(first, transcripts[0].text) <= 0.35 and wer(second, transcripts[1].text) <= 0.25, transcripts
    t1, t2 = transcripts[0].turn_id, transcripts[1].turn_id
    assert any(e.kind == "reply_done" and e.turn_id == t1 and e.data.get("interrupted") for e in events), events
    last = [e for e in events if e.kind == "reply_done" and e.turn_id == t2]
    assert last and last[0].text and not last[0].data.get("interrupted"), events
