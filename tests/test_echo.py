"""Echo cancellation and barge-in in a simulated room: the microphone hears the assistant's own
voice (delayed, attenuated, reverberated) on top of a recorded user."""

import dataclasses
import threading

import numpy as np
import pytest
import soxr

from conftest import normalise, steady_speech, wer
from room import RATE, Room
from talk import voice_of
from voice.capture import read_audio
from voice.echo import RESEMBLES, EchoCanceller, EchoStage, resemblance
from voice.metrics import TurnMetrics
from voice.pipeline import Pipeline
from voice.vad import WebRtcVad


def run_room(config, engines, room, echo: bool, on_event=None):
    canceller = EchoCanceller(config.echo, delay_ms=40) if echo else None
    pipeline = Pipeline(config, engines, room, room, half_duplex=False, echo=canceller)
    metrics, events = TurnMetrics(), []
    pipeline.bus.subscribe(metrics)
    pipeline.bus.subscribe(events.append)
    if on_event:
        pipeline.bus.subscribe(lambda e: on_event(pipeline, e))
    pipeline.run()
    return pipeline, metrics.turns, events


def echo_stage(pipeline: Pipeline) -> EchoStage:
    return next(stage for stage in pipeline.stages if isinstance(stage, EchoStage))


def say_over_reply(room: Room, pcm: np.ndarray, said: dict):
    """An event subscriber for run_room: the user says `pcm` once, 0.2 s after a frame while the
    reply plays and the canceller has settled (3 s of the assistant's voice: before, it gates the
    user's first frames too, see README); a fixed delay after the reply began came too early when
    synthesis left gaps in it. `said` gets when ("t", monotonic s) and where ("i", room sample)."""
    def on_event(pipeline, event):
        if not said and event.kind == "level" and pipeline.speaking.is_set() and echo_stage(pipeline).canceller.settled:
            said["t"], said["i"] = event.t + 0.2, room._now_index() + int(0.2 * RATE)
            room.say(pcm, after_s=0.2)

    return on_event


@pytest.fixture(scope="module")
def question(synth_question):
    return read_audio(synth_question("Tell me a story about a dragon."))


def far_end(engines, text: str) -> np.ndarray:
    """The assistant saying `text` as the speaker gets it (float32), at the room's rate; the same
    samples at every run."""
    tts = engines.synthesizer
    return soxr.resample(steady_speech(tts, text), tts.sample_rate, RATE).astype(np.float32)


def room_echo(played: np.ndarray, delay_ms: float = 40) -> np.ndarray:
    """What the microphone hears of `played` in the simulated room (-6 dB, `delay_ms`, reverberation)."""
    room = Room(np.zeros(1, np.int16), echo_gain_db=-6, echo_delay_ms=delay_ms)
    return np.convolve(np.concatenate([np.zeros(room.delay, np.float32), played]), room.ir)[:len(played)]


def cancel(canceller: EchoCanceller, played: np.ndarray, mic: np.ndarray, only_while_playing=False,
           judged: list | None = None) -> np.ndarray:
    """The canceller on its own, 20 ms frames on the room's clock; returns the cleaned microphone.
    `only_while_playing`: the speaker gets no blocks while the assistant is silent. `judged`
    collects each frame's (echo_only, beyond_echo)."""
    out = np.zeros(len(mic), np.int16)
    for i in range(0, len(mic) - 320 + 1, 320):
        if not only_while_playing or np.any(played[i:i + 320]):
            canceller.reference(played[i:i + 320], RATE, t=i / RATE)
        cleaned = canceller.process(mic[i:i + 320], t=(i + 320) / RATE)
        out[i:i + 320] = cleaned.pcm
        if judged is not None:
            judged.append((cleaned.echo_only, cleaned.beyond_echo))
    return out


def db(pcm: np.ndarray) -> float:
    return 10 * np.log10(np.mean(pcm.astype(np.float64) ** 2) + 1)


def test_echo_canceller_removes_the_assistants_voice(config, engines):
    """On the module alone: the far end played into a room comes back ~25 dB quieter."""
    far = far_end(engines, "The quick brown fox jumps over the lazy dog. Then it runs into the forest and hides.")
    far = far[:len(far) // 320 * 320]
    mic = (room_echo(far) * 32767).astype(np.int16)
    out = cancel(EchoCanceller(config.echo, delay_ms=40), far, mic)
    half = len(out) // 2  # after the canceller has converged
    reduced = db(mic[half:]) - db(out[half:])
    assert reduced >= 15, f"echo reduced by only {reduced:.1f} dB"


def reply_user_reply(engines, shared_clips, talks_s: float, replies_s: float, n_s: float):
    """The assistant's first 1.5 s of a story, a recorded user from `talks_s`, the story going on
    from `replies_s`, in the simulated room: what the speaker played and the microphone heard."""
    far = far_end(engines, "Once upon a time there was a dragon who lived in a cave. "
                           "He liked gold and he liked to sleep all day.")
    clip = next(c for c in shared_clips if c["file"] == "LJ001-0004.wav")
    user = read_audio(clip["path"]).astype(np.float32) / 32768
    first, talks, replies, n = (int(s * RATE) for s in (1.5, talks_s, replies_s, n_s))
    played = np.zeros(n, np.float32)
    played[:first] = far[:first]
    story = far[first:first + n - replies]
    played[replies:replies + len(story)] = story
    voice = np.zeros(n, np.float32)
    voice[talks:talks + len(user)] = user[:replies - talks]
    return played, (np.clip(voice + room_echo(played), -1, 1) * 32767).astype(np.int16)


def test_echo_canceller_keeps_its_echo_path_through_a_long_user_turn(config, engines, shared_clips):
    """The assistant speaks, the user talks for seconds with the speaker silent, the assistant
    speaks again: its second reply is cancelled as well as the first (the module gets silence
    as reference while nothing plays, paired with the microphone by time)."""
    played, mic = reply_user_reply(engines, shared_clips, talks_s=1.5, replies_s=9, n_s=12)
    canceller = EchoCanceller(config.echo, delay_ms=40)
    out = cancel(canceller, played, mic, only_while_playing=True)
    second = slice(int(9.3 * RATE), 11 * RATE)
    assert db(mic[second]) - db(out[second]) >= 45, "the second reply came through"  # 65 dB here; 27-33 fed only while talking
    assert canceller.settled, "3 s of the assistant heard"


def test_a_still_room_passes_the_module_by_and_the_next_reply_is_cancelled(config, engines, shared_clips):
    """Once the speaker and the room have been still a while, the microphone passes the module by
    as it is (its calls were most of idle listening's CPU), the user's voice included; the reply
    after that is cancelled as well as if the module had heard every frame."""
    played, mic = reply_user_reply(engines, shared_clips, talks_s=5.0, replies_s=10.5, n_s=12.5)
    judged: list = []
    out = cancel(EchoCanceller(config.echo, delay_ms=40), played, mic, only_while_playing=True, judged=judged)
    idle = slice(int(4.7 * RATE), int(10.5 * RATE))
    assert np.array_equal(out[idle], mic[idle]), "the microphone went through the module while all was still"
    second = slice(int(10.8 * RATE), len(mic))
    assert db(mic[second]) - db(out[second]) >= 45, "the reply after the pass-by came through"
    # passing by, a block only has its frames counted; frame by frame it comes out the same
    frame_by_frame, judged_so = EchoCanceller(config.echo, delay_ms=40), []
    frame_by_frame._idle = lambda pcm, start: False
    assert np.array_equal(cancel(frame_by_frame, played, mic, only_while_playing=True, judged=judged_so), out)
    assert judged_so == judged


def test_echo_canceller_stays_out_of_the_way_when_the_microphone_does_not_hear_the_speaker(config, engines):
    """Headphones: nothing of the reply reaches the microphone, so there is nothing to remove
    and the canceller's output (which takes ~20 dB off the user at first) is not used."""
    far = far_end(engines, "The quick brown fox jumps over the lazy dog.")[:RATE]
    echo = (room_echo(far) * 32767).astype(np.int16)
    voice = (np.sin(np.arange(320) / 5) * 3000).astype(np.int16)
    for mic, headphones in ((np.zeros(len(far), np.int16), True), (echo, False)):
        canceller = EchoCanceller(config.echo, delay_ms=40)
        cancel(canceller, far, mic)
        assert canceller.hears_speaker != headphones and not canceller.settled  # 1 s of 3
        canceller.reference(far[:320], RATE, t=len(far) / RATE)
        # with headphones the user's voice goes on as it is, not through the module
        assert np.array_equal(canceller.process(voice, t=len(far) / RATE + 0.02).pcm, voice) == headphones


def test_the_start_of_a_reply_the_canceller_lets_through_is_judged_the_assistants_own(config, engines, shared_clips):
    """The speaker's delay moves from one reply to the next (as a sound server's buffering does)
    and the module lets each reply's first few hundred ms through: those frames are judged the
    assistant's, so they cannot interrupt it; a user talking over the reply after that is not."""
    delays_ms, gap = (40, 10, 25), int(1.2 * RATE)
    played, mic = [], []
    for text, delay_ms in zip(("Once upon a time there was a dragon who lived in a cave.",
                               "He liked gold and he liked to sleep.", "Paris is the capital of France."), delays_ms):
        reply = np.concatenate([far_end(engines, text), np.zeros(gap, np.float32)])
        played.append(reply)
        mic.append(room_echo(reply, delay_ms))
    starts = np.cumsum([0, *map(len, played)])[:-1]
    played, mic = np.concatenate(played), np.concatenate(mic)
    clip = next(c for c in shared_clips if c["file"] == "LJ001-0004.wav")
    user = read_audio(clip["path"]).astype(np.float32) / 32768
    user_at = starts[2] + int(0.6 * RATE)
    mic[user_at:user_at + len(user)] += user[:len(mic) - user_at]
    mic = (np.clip(mic, -1, 1) * 32767).astype(np.int16)

    canceller, vad, judged = EchoCanceller(config.echo, delay_ms=40), WebRtcVad(2, RATE), []
    for i in range(0, len(mic) - 320 + 1, 320):
        canceller.reference(played[i:i + 320], RATE, t=i / RATE)
        out, echo_only, _ = canceller.process(mic[i:i + 320], t=(i + 320) / RATE)
        voiced = db(out) > db(np.full(320, 58)) and vad.is_speech(out)  # above -55 dBFS, as the VAD stage
        judged.append((i, voiced, echo_only))
    leaks = [j for i, voiced, j in judged if voiced and starts[1] <= i < starts[1] + RATE // 2]
    assert len(leaks) >= 8, "the changed delay makes the module let the reply's start through"
    slipped = leaks.count(False)
    assert slipped * 20 < config.vad.barge_in_ms and slipped <= 0.1 * len(leaks), \
        f"{slipped} of {len(leaks)} frames of its own voice would count as the user"
    over = [j for i, voiced, j in judged if voiced and user_at + RATE // 2 <= i < user_at + len(user)
            and np.abs(played[i:i + 320]).max() > 0.01]  # while the reply plays
    assert len(over) >= 10 and over.count(False) >= 0.8 * len(over), "the user talking over it is heard"


def user_over_the_first_reply(engines, shared_clips, text: str, user_gain: float = 1.0):
    """A reply of `text` in the simulated room and the recorded user (scaled by `user_gain`) from
    0.6 s into it: the reply, its echo, the user (float32), when they start and the microphone."""
    reply = far_end(engines, text)
    clip = next(c for c in shared_clips if c["file"] == "LJ001-0004.wav")
    user = read_audio(clip["path"]).astype(np.float32) / 32768 * user_gain
    user_at = int(0.6 * RATE)
    echo = room_echo(reply)
    mic = echo.copy()
    mic[user_at:] += user[:len(mic) - user_at]
    return reply, echo, user, user_at, (np.clip(mic, -1, 1) * 32767).astype(np.int16)


def test_a_user_over_the_first_reply_counts_where_louder_than_the_echo(config, engines, shared_clips):
    """While the canceller is new (less than SETTLE_S of the assistant heard) a frame it took most of
    may be its own leak, and is judged the assistant's; but not one louder than the echo can be: the
    user talking over the first reply after launch counts as soon as later (live, the first
    interruption stopped the reply 40 ms later than the others for this)."""
    reply, _, _, user_at, mic = user_over_the_first_reply(
        engines, shared_clips, "The capital of France is Paris, a city on the river Seine.")
    canceller, judged = EchoCanceller(config.echo, delay_ms=40), []
    cancel(canceller, reply, mic, judged=judged)
    assert not canceller.settled, "the whole reply is heard while the canceller is new"
    over = [echo_only for k, (echo_only, beyond) in enumerate(judged)
            if beyond and k * 320 >= user_at and np.abs(reply[k * 320:(k + 1) * 320]).max() > 0.01]
    assert len(over) >= 10 and over.count(False) >= 0.8 * len(over), \
        f"{over.count(True)} of {len(over)} frames of the user louder than the echo judged the assistant's"


def test_a_user_over_the_first_reply_does_not_raise_the_echos_measured_gain(config, engines, shared_clips):
    """While new, the module takes a user talking over the reply ~20 dB down, as it takes the echo:
    their frames are no sample of how loud the echo is (it resembles what the speaker played, they
    do not). Counted, a user 6 dB louder than the room's echo took the gain from -5 to +5 dB here,
    and then less than half of their frames counted as more than the echo can be (live: the first
    interruption after launch stopped the reply 960 ms after the user began)."""
    reply, echo, user, user_at, mic = user_over_the_first_reply(
        engines, shared_clips, "The capital of France is Paris, a city on the river Seine. It is known for the tower.",
        user_gain=2)  # +6 dB
    canceller, judged = EchoCanceller(config.echo, delay_ms=40), []
    cancel(canceller, reply, mic, judged=judged)
    assert canceller._echo_gain_db() <= -1, f"echo gain measured {canceller._echo_gain_db():.1f} dB; the room's is -6"
    # later in the reply, frames where the user is 6 dB above the echo count as more than it (79 of 96; 39 counted)
    loud = [beyond for k, (_, beyond) in enumerate(judged) if 2 * RATE <= k * 320 < user_at + len(user)
            and db(mic[k * 320:(k + 1) * 320]) > db(echo[k * 320:(k + 1) * 320] * 32767) + 6]
    assert len(loud) >= 50 and loud.count(True) >= 0.7 * len(loud), f"{loud.count(True)} of {len(loud)} beyond the echo"


def test_the_assistants_echo_resembles_what_it_played_and_a_user_does_not(engines, shared_clips):
    """80 ms of the microphone against the 240 ms of reply before it: the reply through the room
    (reverberation included) resembles it, the recorded user speaking at the same time does not."""
    far = far_end(engines, "Once upon a time there was a dragon who lived in a cave.")
    echo = room_echo(far)
    clip = next(c for c in shared_clips if c["file"] == "LJ001-0004.wav")
    user = read_audio(clip["path"]).astype(np.float32) / 32768
    near_n, far_n = 1280, 3840
    echoes, users = [], []
    for i in range(far_n - near_n, min(len(far), len(user)) - near_n, 320):
        if np.sqrt(np.mean(echo[i:i + near_n] ** 2)) > 0.003:  # the reply is sounding
            window = far[i + near_n - far_n:i + near_n]
            echoes.append(resemblance(echo[i:i + near_n], window))
            users.append(resemblance(user[i:i + near_n], window))
    assert len(echoes) >= 50
    assert np.mean(np.array(echoes) >= RESEMBLES) >= 0.9, sorted(echoes)[:10]  # 0.97 measured
    assert np.mean(np.array(users) >= RESEMBLES) <= 0.2, sorted(users)[-10:]  # 0.14: a user stops it 20 ms later now and then


def test_a_reply_the_canceller_lets_through_midway_is_judged_the_assistants_own(config, engines):
    """The speaker's delay jumps in the middle of a reply (40 -> 10 ms, no pause): the module
    lets the next few hundred ms through, which must not count as the user."""
    far = far_end(engines, "Once upon a time there was a dragon who lived in a cave, and he liked gold "
                           "and he liked to sleep all day long in the dark.")
    jump = 3 * RATE
    mic = np.concatenate([room_echo(far, 40)[:jump], room_echo(far, 10)[jump:]])
    mic = (np.clip(mic, -1, 1) * 32767).astype(np.int16)
    canceller, vad, leaks = EchoCanceller(config.echo, delay_ms=40), WebRtcVad(2, RATE), []
    for i in range(0, len(mic) - 320 + 1, 320):
        canceller.reference(far[i:i + 320], RATE, t=i / RATE)
        out, echo_only, _ = canceller.process(mic[i:i + 320], t=(i + 320) / RATE)
        if jump <= i < jump + RATE and db(out) > db(np.full(320, 58)) and vad.is_speech(out):
            leaks.append(echo_only)
    assert len(leaks) >= 10, "the jump makes the module let the reply through"
    slipped = leaks.count(False)  # 3 of 20 here; 16 without judging what resembles the reference
    assert slipped * 20 < config.vad.barge_in_ms and slipped <= len(leaks) // 4, \
        f"{slipped} of {len(leaks)} frames of its own voice count as the user"


def test_what_the_speaker_dropped_at_an_interruption_leaves_the_reference(config, engines):
    """Blocks handed to the speaker but dropped unplayed at a barge-in never sounded: the
    reference holds silence there, as the microphone does."""
    far = far_end(engines, "The quick brown fox jumps over the lazy dog.")[:RATE]
    canceller = EchoCanceller(config.echo, delay_ms=40)
    canceller.reference(far, RATE, t=0.0)  # one second handed over at once, as a primed stream takes it
    canceller.discard(t=0.5)
    assert np.abs(canceller._reference_at(0.4)).max() > 0, "what played before stays"
    assert not canceller._reference_at(0.5).any() and not canceller._reference_at(0.8).any()


def test_no_self_trigger_with_echo_cancellation(config, engines, question):
    room = Room(question, echo_gain_db=-6, echo_delay_ms=40, tail_s=12, frame_ms=config.audio.frame_ms)
    _, turns, _ = run_room(config, engines, room, echo=True)
    heard = [t.get("transcript") for t in turns if t.get("transcript")]
    assert len(heard) == 1 and "dragon" in normalise(heard[0]), heard
    assert not any(t.get("interrupted") for t in turns), "its own voice did not interrupt it"
    assert np.abs(room.played).max() > 0.1, "the assistant did speak into the room"


def test_without_echo_cancellation_full_duplex_hears_itself(config, engines, question):
    """The control: the same room, microphone open, no canceller: the assistant answers its own voice.
    (Without holding the reply at its first voice: held, its echo falls silent with it, and the
    reply stutters instead.)"""
    room = Room(question, echo_gain_db=-6, echo_delay_ms=40, tail_s=12, frame_ms=config.audio.frame_ms)
    unheld = dataclasses.replace(config, vad=dataclasses.replace(config.vad, hold_ms=0))
    _, turns, _ = run_room(unheld, engines, room, echo=False)
    assert len([t for t in turns if t.get("transcript")]) >= 2, "the echo opened turns of its own"


def test_barge_in_stops_the_reply_and_the_user_is_heard(config, engines, question, shared_clips):
    clip = next(c for c in shared_clips if c["file"] == "LJ001-0004.wav")
    interruption = read_audio(clip["path"])
    room = Room(question, echo_gain_db=-6, echo_delay_ms=40, tail_s=19, frame_ms=config.audio.frame_ms)
    said = {}
    pipeline, turns, events = run_room(config, engines, room, echo=True, on_event=say_over_reply(room, interruption, said))
    kinds = [e.kind for e in events]
    assert "interrupted" in kinds, kinds
    assert "reply_held" in kinds and kinds.index("reply_held") < kinds.index("barge_in"), \
        "held at the user's first voice, then interrupted"
    assert "reply_resumed" not in kinds, [(e.kind, round(e.t - said["t"], 2)) for e in events if e.kind != "level"]
    first = turns[0]
    assert first.get("interrupted") and first["reply"] != "", first
    # the speaker went quiet soon after the user started, and nothing of the old reply came back
    # (until the answer to the interruption, which may start at a pause within it)
    start, end = said["i"], said["i"] + len(interruption)
    answers = [int((e.t - room._t0) * RATE) for e in events
               if e.kind == "playback_start" and e.turn_id != first["turn"]]
    quiet = room.played[start + int(0.6 * RATE):min([end, *answers])]
    assert np.abs(quiet).max() < 1e-3, "the reply kept playing"
    # the interruption was heard and answered
    later = [t for t in turns[1:] if t.get("transcript")]
    assert later, turns
    assert wer(clip["transcript"], " ".join(t["transcript"] for t in later)) <= 0.35
    history = pipeline.conversation.messages("x")
    assert history[2]["content"] == first["reply"], history[2]  # only what was heard
    assert history[3]["content"].startswith("(I interrupted you.) "), history[3]


def test_an_interjection_over_the_reply_waits_for_what_the_user_says_next(config, engines, synth_question):
    """"Okay." over the reply, a pause, then the question: the interjection reads as finished,
    but over the reply it does not end the turn early, so no reply to "Okay." begins in the pause;
    the whole is one turn, answered once."""
    interruption = np.concatenate([voice_of(synth_question("Okay.")), np.zeros(int(0.35 * RATE), np.int16),
                                   voice_of(synth_question("What about Germany?"))])
    room = Room(read_audio(synth_question("Tell me a fun fact about the moon.")),
                echo_gain_db=-6, echo_delay_ms=40, tail_s=16, frame_ms=config.audio.frame_ms)
    said = {}
    pipeline, turns, events = run_room(config, engines, room, echo=True, on_event=say_over_reply(room, interruption, said))
    assert said and "interrupted" in [e.kind for e in events]
    heard = {e.turn_id: e.text for e in events if e.kind == "transcript"}
    early = [heard.get(e.turn_id, "") for e in events if e.kind == "turn_decided" and "early_ms" in e.data]
    assert all(len(text.split()) > 2 for text in early), early
    after = [t for t in turns[1:] if t.get("transcript")]
    assert [normalise(t["transcript"]).split()[-1] for t in after] == ["germany"], after
    replied = {e.turn_id for e in events if e.kind == "playback_start"}
    assert replied == {turns[0]["turn"], after[0]["turn"]}, (replied, turns)


def test_a_cough_over_the_reply_holds_it_and_it_plays_on(config, engines, shared_clips, synth_question):
    """120 ms of voice over the reply (a cough, a "hm"): the reply falls silent at once, and, the
    voice stopping short of barge_in_ms, plays on from where it was held, to its end."""
    clip = read_audio(next(c for c in shared_clips if c["file"] == "LJ001-0004.wav")["path"])
    n = 120 * RATE // 1000
    loudest = int(np.argmax(np.convolve(clip.astype(np.float64) ** 2, np.ones(n), "valid")))
    cough = clip[loudest:loudest + n]
    room = Room(read_audio(synth_question("Tell me a fun fact about the moon.")),
                echo_gain_db=-6, echo_delay_ms=40, tail_s=14, frame_ms=config.audio.frame_ms)
    said = {}
    pipeline, turns, events = run_room(config, engines, room, echo=True, on_event=say_over_reply(room, cough, said))
    kinds = [e.kind for e in events]
    assert said and "reply_held" in kinds and "reply_resumed" in kinds, kinds
    assert "barge_in" not in kinds and "interrupted" not in kinds, kinds
    [turn] = [t for t in turns if t.get("reply")]
    assert not turn.get("interrupted")
    played = {e.data["index"] for e in events if e.kind == "sentence_played"}
    written = {e.data["index"] for e in events if e.kind == "sentence" and e.turn_id == turn["turn"]}
    assert played == written, "every sentence of the reply was played"
    assert pipeline.conversation.messages("x")[2]["content"] == turn["reply"], "the whole reply is in the history"
    held, resumed = (next(e.t for e in events if e.kind == kind) for kind in ("reply_held", "reply_resumed"))
    # what the room had taken plays out (its buffer, and the block being written): then silence
    silent = room.played[int((held - room._t0 + room.latency + 0.06) * RATE):int((resumed - room._t0) * RATE)]
    assert len(silent) > 0.1 * RATE and np.abs(silent).max() < 1e-3, "silent while held"
