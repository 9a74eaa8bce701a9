"""The benchmark's helpers (scripts/bench), on real pipeline runs. Nothing here is timed."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import wer
from voice.capture import FileSource, read_audio

BENCH_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench"


@pytest.fixture(scope="module")
def bench():
    loader = importlib.machinery.SourceFileLoader("bench", str(BENCH_SCRIPT))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("bench", loader))
    sys.modules["bench"] = module  # dataclasses look their module up there
    loader.exec_module(module)
    yield module
    del sys.modules["bench"]


def test_percentiles(bench):
    assert bench.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert bench.percentile([0.2], 95) == 0.2
    assert bench.percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    assert bench.percentile([], 50) is None


def test_a_file_with_pauses_becomes_one_case_per_turn(bench, config, shared_clips, tmp_path):
    jfk = next(c for c in shared_clips if c["file"] == "jfk.flac")
    turns = bench.find_turns(read_audio(jfk["path"]), config)
    assert len(turns) >= 2
    cases = bench.prepare_cases([{"file": str(jfk["path"]), "text": jfk["transcript"]}], config, tmp_path)
    assert len(cases) == len(turns)
    for case in cases:
        assert len(bench.find_turns(read_audio(case.path), config)) == 1, case.id
        assert case.text is None  # the transcript belongs to the whole file, not to a piece


def _question_case(bench, config, synth_question, tmp_path, text):
    source = {"file": str(synth_question(text)), "text": text}
    (case,) = bench.prepare_cases([source], config, tmp_path / "cases")
    return case


def test_stages_of_a_real_turn_add_up_to_the_response_latency(bench, engines, config, synth_question, tmp_path):
    case = _question_case(bench, config, synth_question, tmp_path, "What is the capital of France?")
    source = FileSource(case.path, config.audio.frame_ms, config.audio.sample_rate, realtime=True)
    records = bench.run_pipeline(config, engines, source, tmp_path / "reply.wav", timeout_s=120)

    assert len(records) == 1 and bench.is_complete(records[0]), records
    durations = bench.stage_durations(records[0])
    parts = [durations[name] for name, *_ in bench.STAGES if name != "response"]
    assert all(d >= 0 for d in parts), durations
    assert sum(parts) == pytest.approx(durations["response"])
    assert durations["response"] == pytest.approx(records[0]["response_latency_s"], abs=1e-3)

    summary = bench.summarise(records + [{"turn": 9, "dropped": "no speech recognised"}])
    assert summary["response"]["n"] == 1  # the incomplete turn is left out
    assert summary["response"]["p50_ms"] == summary["response"]["p95_ms"]


def test_the_naive_baseline_answers_with_the_same_record_fields(bench, engines, config, synth_question, tmp_path):
    case = _question_case(bench, config, synth_question, tmp_path, "How many days are in a week?")
    (record,) = bench.NaiveAssistant(config, engines).run(case, tmp_path)

    assert bench.is_complete(record)
    assert wer(case.text, record["transcript"]) <= 0.2, record["transcript"]
    assert record["reply"]
    assert all(v >= 0 for v in bench.stage_durations(record).values())
    played = read_audio(tmp_path / f"{case.id}_naive.wav")
    assert np.abs(played).max() > 1000  # the reply was written to the sink
