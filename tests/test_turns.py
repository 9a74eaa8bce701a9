"""A turn taken back (speculation the user spoke on from, or barge-in) costs no more work:
stages that get its frames late skip them, with the real models behind them."""

import queue
import threading
import time

import numpy as np
import psutil

from voice.capture import read_audio
from voice.frames import END, ReplyEnd, SpeechAudio, Transcript, Utterance
from voice.history import Conversation
from voice.heap import release_freed_memory
from voice.llm import FIRST_AUDIO_WAIT_S, LlmStage
from voice.playback import PlaybackStage, WavSink
from voice.stage import EventBus
from voice.stt import SttStage
from voice.turns import Turns


def retracted(turns: Turns) -> int:
    """What the VAD does when the user speaks on after a speculative turn."""
    turn_id = turns.next_id()
    turns.cancel(turn_id)
    turns.done(turn_id)
    return turn_id


def test_a_cancellation_reaches_a_stage_that_asks_later():
    turns = Turns()
    gone = retracted(turns)
    assert turns.cancel_event(gone).is_set() and turns.is_retracted(gone)
    live = turns.next_id()
    assert not turns.cancel_event(live).is_set() and not turns.is_retracted(live)


def test_barge_in_cancels_a_committed_turn_which_is_not_retracted():
    turns = Turns()
    asked = turns.next_id()
    turns.commit(asked)
    assert turns.cancel_open() == [asked]
    assert turns.is_cancelled(asked) and not turns.is_retracted(asked)
    assert turns.cancel_event(asked).is_set()


def drain(q: queue.Queue) -> list:
    items = []
    while not q.empty():
        items.append(q.get_nowait())
    return items


def test_whisper_skips_a_retracted_turn(config, engines, shared_clips):
    clip = next(c for c in shared_clips if c["file"] == "LJ001-0004.wav")
    pcm = read_audio(clip["path"])
    turns, bus, events, out = Turns(), EventBus(), [], queue.Queue()
    bus.subscribe(events.append)
    stage = SttStage(config.stt, engines.transcriber, queue.Queue(), out, threading.Event(), bus,
                     is_retracted=turns.is_retracted)
    gone, asked = retracted(turns), turns.next_id()
    now = time.monotonic()
    for turn_id in (gone, asked):
        stage.handle(Utterance(turn_id, pcm, 16000, now, now, now))
    transcripts = drain(out)
    assert [t.turn_id for t in transcripts] == [asked]
    assert "printed book" in transcripts[0].text.lower()
    assert [e.turn_id for e in events if e.kind == "transcript"] == [asked]


def test_words_of_a_turn_taken_back_while_whisper_listened_go_nowhere(config, engines, shared_clips):
    """The user spoke on while the real Whisper transcribed the speculative turn: its words
    are neither passed on nor shown (a window would print a line nobody is answered for)."""
    clip = next(c for c in shared_clips if c["file"] == "LJ001-0004.wav")
    turns, bus, events, out = Turns(), EventBus(), [], queue.Queue()
    bus.subscribe(events.append)
    turn_id = turns.next_id()

    class SpokenOnMeanwhile:
        def transcribe(self, audio):
            recognition = engines.transcriber.transcribe(audio)
            turns.cancel(turn_id)  # what the VAD does on voice after the pause
            turns.done(turn_id)
            return recognition

    stage = SttStage(config.stt, SpokenOnMeanwhile(), queue.Queue(), out, threading.Event(), bus,
                     is_retracted=turns.is_retracted)
    now = time.monotonic()
    stage.handle(Utterance(turn_id, read_audio(clip["path"]), 16000, now, now, now))
    assert drain(out) == [] and not [e for e in events if e.kind in ("transcript", "turn_dropped")]


def llm_stage(config, engines, bus: EventBus, out: queue.Queue, **options) -> LlmStage:
    """The LLM stage on the real model with an empty conversation, driven by calling `handle`."""
    conversation = Conversation(config.llm.system_prompt, engines.chat.count_tokens, 1024)
    return LlmStage(engines.chat, conversation, queue.Queue(), out, threading.Event(), bus, **options)


def test_the_model_writes_nothing_for_a_turn_taken_back_before_it_started(config, engines):
    turns, bus, events, out = Turns(), EventBus(), [], queue.Queue()
    bus.subscribe(events.append)
    stage = llm_stage(config, engines, bus, out, cancel_for=turns.cancel_event)
    gone, asked = retracted(turns), turns.next_id()
    for turn_id in (gone, asked):
        stage.handle(Transcript(turn_id, "What is the capital of France?", time.monotonic()))
    items = [i for i in drain(out) if i is not END]
    ends = [i for i in items if isinstance(i, ReplyEnd)]
    assert [(e.turn_id, e.text) for e in ends][0] == (gone, ""), "the taken-back turn ends at once, empty"
    assert ends[1].turn_id == asked and ends[1].text, "the next turn is answered"
    said = {e.turn_id for e in events if e.kind in ("first_token", "sentence")}
    assert said == {asked}
    assert np.all([i.turn_id == asked for i in items if not isinstance(i, ReplyEnd)])



def playing(config, engines, tmp_path):
    """A playback stage into a WAV, with a committed turn: (turns, events, sink, stage, turn_id)."""
    turns, bus, events = Turns(), EventBus(), []
    bus.subscribe(events.append)
    sink = WavSink(tmp_path / "out.wav", engines.synthesizer.sample_rate)
    stage = PlaybackStage(config.output, sink, queue.Queue(), threading.Event(), bus, threading.Event(), turns)
    turn_id = turns.next_id()
    turns.commit(turn_id)
    return turns, events, sink, stage, turn_id

def test_a_reply_cancelled_between_two_sentences_reports_what_was_heard(config, engines, tmp_path):
    """Barge-in may land after one sentence has played and before the next arrives: the
    interruption is reported all the same, with the whole first sentence as heard."""
    turns, events, sink, stage, turn_id = playing(config, engines, tmp_path)
    first, second = "The capital of France is Paris.", "It is a lovely city."
    for index, text in enumerate((first, second)):
        pcm = engines.synthesizer.whole(text)
        if index == 1:
            turns.cancel_open()  # the user spoke while the second sentence was on its way
        stage.handle(SpeechAudio(turn_id, index, text, pcm, engines.synthesizer.sample_rate, time.monotonic()))
    stage.handle(SpeechAudio(turn_id, 2, "More.", pcm, engines.synthesizer.sample_rate, time.monotonic()))
    stage.handle(ReplyEnd(turn_id, f"{first} {second} More."))
    sink.close()
    assert [e.text for e in events if e.kind == "interrupted"] == [first]
    [done] = [e for e in events if e.kind == "reply_done"]
    assert done.text == first and done.data["interrupted"]


def test_the_model_waits_for_the_first_sentence_to_be_synthesized(config, engines):
    """Piper gets both cores for the first sentence, the one the user waits for: the model
    writes on once it is synthesized (here nobody synthesizes: at most FIRST_AUDIO_WAIT_S)."""
    bus, events, out = EventBus(), [], queue.Queue()
    bus.subscribe(events.append)
    stage = llm_stage(config, engines, bus, out)
    stage.handle(Transcript(1, "Tell me three facts about the moon.", time.monotonic()))
    sentences = [e.t for e in events if e.kind == "sentence"]
    assert len(sentences) >= 2, [e.text for e in events if e.kind == "sentence"]
    assert sentences[1] - sentences[0] >= FIRST_AUDIO_WAIT_S


def test_a_reply_taken_back_does_not_wait_for_its_first_sentence(config, engines):
    turns, bus, events = Turns(), EventBus(), []
    bus.subscribe(events.append)
    turn_id = turns.next_id()
    bus.subscribe(lambda e: turns.cancel(turn_id) if e.kind == "sentence" else None)  # barge-in right then
    stage = llm_stage(config, engines, bus, queue.Queue(), cancel_for=turns.cancel_event)
    stage.handle(Transcript(turn_id, "Tell me three facts about the moon.", time.monotonic()))
    sentences = [e.t for e in events if e.kind == "sentence"]  # the first, and what was left when it stopped
    assert time.monotonic() - sentences[0] < FIRST_AUDIO_WAIT_S, "it stopped at once, not after the pause"


def test_the_model_writes_the_first_sentence_on_both_cores_and_the_rest_on_one(config, engines):
    """Nothing else runs while the first sentence is written (Piper waits for it); after it,
    Piper speaks alongside and gets a core of its own."""
    import llama_cpp

    bus, threads = EventBus(), []
    bus.subscribe(lambda e: threads.append(llama_cpp.llama_n_threads(engines.chat.llama.ctx))
                  if e.kind == "sentence" else None)
    stage = llm_stage(config, engines, bus, queue.Queue())
    stage.handle(Transcript(1, "Tell me three facts about the moon.", time.monotonic()))
    assert len(threads) >= 2
    assert threads[0] == config.llm.batch_threads == 2
    assert set(threads[1:]) == {config.llm.threads} == {1}


def test_between_turns_the_heap_freed_on_a_stage_thread_goes_back_to_the_system():
    """glibc keeps what a thread freed in that thread's arena until it is trimmed."""
    kept = []

    def churn():  # ~200 MB of small blocks, freed but for the last one
        blocks = [bytes(2000) + bytes([i % 256]) for i in range(100_000)]
        kept.append(blocks[-1])

    worker = threading.Thread(target=churn)
    worker.start()
    worker.join()
    before = psutil.Process().memory_info().rss
    assert release_freed_memory()
    assert before - psutil.Process().memory_info().rss > 100 * 2**20


def test_a_sentence_cancelled_between_two_of_its_blocks_reports_the_words_before(config, engines, tmp_path):
    """Piper's blocks of one sentence (voice.piper_voice): some played, then barge-in. What was
    heard is the sentence's words up to where the last played block ends, cut mid-sentence."""
    turns, events, sink, stage, turn_id = playing(config, engines, tmp_path)
    text = "The capital of France is Paris, a lovely city."
    sounds = list(engines.synthesizer.synthesize(text))
    played = next(i for i, s in enumerate(sounds) if s.ends > 0.3) + 1  # a few words' worth
    assert played < len(sounds)
    rate = engines.synthesizer.sample_rate
    for i, sound in enumerate(sounds):
        if i == played:
            assert not [e for e in events if e.kind == "sentence_played"]  # not all of it yet
            turns.cancel_open()
        stage.handle(SpeechAudio(turn_id, 0, text, sound.pcm, rate, time.monotonic(), sound.begins, sound.ends))
    stage.handle(ReplyEnd(turn_id, text))
    sink.close()
    words = text.split()
    [interrupted] = [e for e in events if e.kind == "interrupted"]
    assert interrupted.text == " ".join(words[:int(len(words) * sounds[played].begins)]) and interrupted.data["cut"]
    assert 0 < len(interrupted.text.split()) < len(words)
    [done] = [e for e in events if e.kind == "reply_done"]
    assert done.text == interrupted.text and done.data["interrupted"]
