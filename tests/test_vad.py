"""The VAD segmenter on sequences of booleans (20 ms frames), and webrtcvad on real speech."""

import dataclasses

import numpy as np
import pytest

from voice.capture import read_audio
from voice.talk_over import UNSURE_VOICE_FACTOR
from voice.vad import Closed, Dropped, Opened, Segmenter, WebRtcVad


def seg(**kw) -> Segmenter:
    args = dict(frame_ms=20, start_ms=60, start_window_ms=200, min_speech_ms=200, end_silence_ms=500,
                pre_roll_ms=100, max_turn_ms=30_000)
    args.update(kw)
    return Segmenter(**args)


def run(s: Segmenter, pattern: str) -> list:
    """'1' voiced frame, '0' silent frame; the payload is the frame's index."""
    out = []
    for i, ch in enumerate(pattern):
        o = s.push(ch == "1", i, i * 0.02)
        if o is not None:
            out.append(o)
    return out


def test_a_turn_opens_and_closes_with_pre_roll():
    s = seg()
    out = run(s, "0" * 10 + "1" * 20 + "0" * 25)
    assert isinstance(out[0], Opened) and isinstance(out[1], Closed)
    closed = out[1]
    assert closed.payloads[0] == 5, "100 ms (5 frames) of pre-roll before the first voiced frame"
    assert closed.payloads[-1] <= 31, "trailing silence trimmed to 2 frames"
    assert closed.t_start == pytest.approx(10 * 0.02) and closed.t_end == pytest.approx(29 * 0.02)
    assert s.state == "quiet"


def test_short_noise_is_ignored():
    s = seg()
    # a 40 ms click never opens a turn; a 120 ms cough opens one that is dropped as too short
    assert run(s, "0" * 5 + "11" + "0" * 30) == []
    out = run(s, "0" * 5 + "111111" + "0" * 30)
    assert isinstance(out[0], Opened) and isinstance(out[1], Dropped)


def test_pause_shorter_than_the_window_does_not_split():
    s = seg()
    out = run(s, "1" * 20 + "0" * 20 + "1" * 20 + "0" * 26)
    closed = [o for o in out if isinstance(o, Closed)]
    assert len(closed) == 1 and closed[0].voiced_ms == 40 * 20


def test_pause_as_long_as_the_window_splits():
    out = run(seg(), "1" * 20 + "0" * 26 + "1" * 20 + "0" * 26)
    assert sum(isinstance(o, Closed) for o in out) == 2


def test_states_follow_the_frames():
    s = seg()
    assert s.state == "quiet"
    s.push(True)
    assert s.state == "starting"
    s.push(True), s.push(True)
    assert s.state == "speaking"
    s.push(False)
    assert s.state == "stopping"


def test_monologue_is_cut_at_max_turn():
    out = run(seg(max_turn_ms=1000), "1" * 120 + "0" * 26)
    closed = [o for o in out if isinstance(o, Closed)]
    assert [c.cut for c in closed] == [True, True, False]
    assert all(len(c.payloads) <= 50 for c in closed)


def test_push_to_talk_forces_the_state():
    s = seg(auto_open=False)
    assert run(s, "1" * 30) == [], "voice alone never opens a turn"
    s.force_open(1.0)
    run(s, "1" * 10 + "0" * 40)
    closed = s.force_close(2.0)
    assert isinstance(closed, Closed) and s.state == "quiet"


def test_flush_closes_a_turn_at_end_of_input():
    s = seg()
    run(s, "1" * 20)
    assert isinstance(s.flush(), Closed)


def test_webrtcvad_hears_recorded_speech_not_silence(shared_clips):
    vad = WebRtcVad(2, 16000)
    pcm = read_audio(shared_clips[1]["path"])
    frames = [pcm[i:i + 320] for i in range(0, len(pcm) - 320, 320)]
    voiced = sum(vad.is_speech(f) for f in frames) / len(frames)
    assert voiced > 0.5
    fresh = WebRtcVad(2, 16000)
    assert not any(fresh.is_speech(np.zeros(320, np.int16)) for _ in range(50))


class OverReply:
    """A VadStage while the assistant speaks (until it is interrupted, or `speaking` is cleared), fed recorded audio as frames
    the echo canceller judged `echo_only` or not, and louder than the echo can be (`beyond_echo`) or
    not. `holds` gets (held, voice so far in ms) as it holds the reply and lets it go, `barged` the
    voice so far and the `before` of each barge-in."""

    def __init__(self, config, echo_only: bool = False, beyond_echo: bool = True) -> None:
        import queue
        import threading

        from voice.stage import EventBus
        from voice.turns import Turns
        from voice.vad import VadStage

        self.echo_only, self.beyond_echo, self.speaking = echo_only, beyond_echo, True
        self.bus, self.events, self.out, self.holds, self.barged = EventBus(), [], queue.Queue(), [], []
        self.bus.subscribe(self.events.append)
        self.stage = VadStage(config.vad, 20, queue.Queue(), self.out, threading.Event(), self.bus, Turns(),
                              is_speaking=lambda: self.speaking and not self.barged,
                              barge_in=lambda before=None: self.barged.append((self.voiced(), before)),
                              hold_reply=lambda held: self.holds.append((held, self.voiced())))

    def voiced(self) -> int:
        return self.stage.segmenter.voiced_ms

    def feed(self, pcm) -> "OverReply":
        from voice.frames import AudioFrame

        for i in range(0, len(pcm) - 320 + 1, 320):
            self.stage.handle(AudioFrame(pcm[i:i + 320], 16000, i / 16000, self.echo_only, self.beyond_echo))
        return self


def vad_over_reply(config, pcm, echo_only: bool = False):
    """OverReply fed `pcm`: its events, whether it interrupted the assistant, its outbox."""
    run = OverReply(config, echo_only).feed(pcm)
    return run.events, bool(run.barged), run.out


@pytest.mark.parametrize("echo_only", [False, True])
def test_what_the_echo_canceller_judged_the_assistants_voice_does_not_interrupt(config, shared_clips, echo_only):
    """A recorded voice over the reply interrupts it, unless the echo canceller judged it the
    assistant's own (its leaks at the start of a reply are as loud as speech)."""
    clip = next(c for c in shared_clips if c["file"] == "LJ001-0004.wav")
    pcm = np.concatenate([read_audio(clip["path"])[:27 * 320], np.zeros(16000, np.int16)])
    events, barged, _ = vad_over_reply(config, pcm, echo_only)
    assert barged != echo_only
    assert any(e.kind == "speech_start" for e in events) != echo_only


def test_voice_over_the_reply_too_short_to_interrupt_is_no_turn(config, shared_clips):
    """120 ms of voice while the assistant speaks (a backchannel, a leak of its own voice) does
    not interrupt it, and is dropped rather than answered, even where such a short turn counts."""
    clip = next(c for c in shared_clips if c["file"] == "LJ001-0004.wav")
    pcm = np.concatenate([read_audio(clip["path"])[:7 * 320], np.zeros(16000, np.int16)])  # 6 voiced frames
    short = dataclasses.replace(config, vad=dataclasses.replace(config.vad, min_speech_ms=100))
    events, barged, out = vad_over_reply(short, pcm)
    dropped = [e.text for e in events if e.kind == "turn_dropped"]
    assert not barged and not any(e.kind == "turn_decided" for e in events)
    assert dropped and "too short to interrupt" in dropped[0], dropped
    # what was sent on speculation at the pause is taken back
    assert {u.turn_id for u in out.queue} == {e.turn_id for e in events if e.kind == "turn_retracted"}


def at(ms: int) -> int:
    """The voice of the first whole 20 ms frame that reaches `ms` of it."""
    return -(-ms // 20) * 20


def speech_then_silence(shared_clips, frames: int = 50):
    clip = next(c for c in shared_clips if c["file"] == "LJ001-0004.wav")
    return np.concatenate([read_audio(clip["path"])[:frames * 320], np.zeros(16000, np.int16)])


def test_voice_over_the_reply_holds_it_then_interrupts_it(config, shared_clips):
    """Recorded speech over the reply: at `hold_ms` of voice the reply is held, at `barge_in_ms` it
    is interrupted."""
    run = OverReply(config).feed(speech_then_silence(shared_clips))
    assert run.holds and run.holds[0] == (True, at(config.vad.hold_ms)), run.holds
    assert run.barged[0] == (at(config.vad.barge_in_ms), None)


@pytest.mark.parametrize("whisper_heard", [True, False])
def test_voice_never_louder_than_the_echo_holds_the_reply_until_whisper_decides(config, shared_clips, whisper_heard):
    """Voice none of which was louder than the assistant's echo can be (what the canceller lets
    through of the assistant looks so) holds the reply only at UNSURE_VOICE_FACTOR x barge_in_ms,
    and interrupts it only if Whisper heard words in it (the turn itself goes on); a turn Whisper
    dropped (no speech, or the assistant's own words) lets the reply play on."""
    run = OverReply(config, beyond_echo=False).feed(speech_then_silence(shared_clips))
    assert run.holds == [(True, at(UNSURE_VOICE_FACTOR * config.vad.barge_in_ms))] and not run.barged
    utterances = [u.turn_id for u in run.out.queue]
    assert utterances, "the turn went to Whisper"
    if whisper_heard:
        run.bus.emit("transcript", utterances[-1], "And it is worth mention in passing")
    else:
        run.bus.emit("turn_dropped", utterances[-1], "its own voice")
    run.feed(np.zeros(640, np.int16))
    if whisper_heard:
        assert run.barged and run.barged[0][1] == utterances[0], run.barged
        assert len(run.holds) == 1, "the interruption ends the hold"
    else:
        assert not run.barged and run.holds[-1][0] is False, run.holds


def test_a_reply_that_ends_while_held_leaves_the_voice_a_turn(config, shared_clips):
    """The reply ends just after voice over it held it (its last block was playing): the hold
    ends with it, nothing is interrupted, and the user's sentence is a turn that is answered, not
    dropped as too short to interrupt (e2e with room echo: "Stop. What's the capital of Germany?"
    begun as a short reply ended, then dropped)."""
    pcm = speech_then_silence(shared_clips)
    hold_frames = at(config.vad.hold_ms) // 20 + 1
    run = OverReply(config).feed(pcm[:hold_frames * 320])
    assert run.holds == [(True, at(config.vad.hold_ms))], run.holds
    run.speaking = False  # the reply's last block has played
    run.feed(pcm[hold_frames * 320:])
    assert not run.barged, "nothing was left to interrupt"
    assert [held for held, _ in run.holds] == [True, False], run.holds
    assert run.holds[1][1] <= at(config.vad.hold_ms) + 40, "let go as the reply ended, not at resume_ms"
    assert not [e for e in run.events if e.kind == "turn_dropped"], [e.text for e in run.events]
    decided = [e for e in run.events if e.kind == "turn_decided"]
    assert len(decided) == 1 and decided[0].data["audio_s"] > 0.8, decided


def test_a_cough_over_the_reply_holds_it_and_lets_it_go(config, shared_clips):
    """Voice over the reply that stops short of `barge_in_ms` holds it, then lets it play on after
    `resume_ms` of silence; a second such sound in the same turn is not added to the first."""
    clip = read_audio(next(c for c in shared_clips if c["file"] == "LJ001-0004.wav")["path"])
    voiced = [i for i in range(0, len(clip) - 320, 320) if WebRtcVad(2, 16000).is_speech(clip[i:i + 320])]
    cough = np.concatenate([clip[i:i + 320] for i in voiced[10:16]])  # 120 ms of voice
    gap_ms = (config.vad.resume_ms + config.vad.end_silence_ms) // 2
    assert config.vad.resume_ms < gap_ms < config.vad.end_silence_ms  # the reply plays on, the turn stays open
    gap = np.zeros(16 * gap_ms, np.int16)
    run = OverReply(config).feed(np.concatenate([cough, gap, cough, np.zeros(16000, np.int16)]))
    assert not run.barged, "two coughs are no interruption"
    assert [held for held, _ in run.holds] == [True, False, True, False], run.holds
