"""Echo cancellation: the assistant must not hear itself through the speakers.

WebRTC's audio processing module (from the `livekit` package) gets exactly the audio sent
to the speaker (`reference`, from the playback thread) and the microphone (the echo stage,
on its own thread), both in 10 ms frames at 16 kHz, and removes the speaker's echo from
the microphone. With it the microphone stays open while the assistant speaks, so the user
can interrupt it on plain laptop speakers; without it the pipeline is half-duplex.

The module wants one far-end frame per microphone frame, silence included, each paired with
the microphone frame of the same moment: fed only while the assistant talked, it lost its echo
path during a long user turn, and fed as the threads happened to run, the pairing moved with
the machine's load at every sentence; both let the start of a reply through, which then
interrupted itself. So the playback thread lays the reference out on the clock (a block sounds
right after the one before it, or now if the speaker was idle) and the echo stage hands the
module, before each microphone frame, the reference of that frame's moment, or silence. Once
the speaker and the room have been still a while, it gets neither (IDLE_FRAMES): the echo thread
then takes a fifth of the CPU it took.

What the module lets through of the assistant is not always quiet (while it is new, at the start
of a reply, and now and then later), so each frame also carries the canceller's judgement,
`echo_only`: the VAD does not count such a frame as the user's voice.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from typing import NamedTuple

import numpy as np
import soxr

from .capture import to_int16
from .config import EchoConfig
from .frames import AudioFrame
from .level import dbfs
from .stage import EventBus, Stage

log = logging.getLogger(__name__)

RATE = 16000
FRAME = RATE // 100  # the module works on 10 ms frames
HISTORY_S = 1.0  # a speaker idle for longer than this starts a new reference timeline
SETTLE_S = 3.0  # the module lets some echo through until it has heard this much of the assistant
AUDIBLE = 32  # int16 peak: -60 dBFS
COUPLING_FRAMES = 100  # the last second of the assistant's voice tells whether the microphone hears it
# The module lets the first 100-250 ms of a reply after a pause through, 0-10 dB down, when the
# speaker's delay moved since the last reply (measured on the virtual devices with delay hints of
# 20-60 ms; the assistant then interrupted itself in 2 of 5 replies): a frame there that the echo
# alone explains is the assistant's. The echo's level is the reference's loudest over the last
# ECHO_SPAN_FRAMES (our timeline is 5-45 ms ahead of the microphone here) plus the gain measured
# on frames the module took over CLEARLY_ECHO_DB out of. A user who talks over those 500 ms counts
# only where louder than that: an interruption right at a reply's start stops it later.
ONSET_QUIET_FRAMES = 30  # a reply (or a piece) that starts after 300 ms of silence ...
ONSET_FRAMES = 50  # ... has its first 500 ms judged so
ECHO_SPAN_FRAMES = 12
CLEARLY_ECHO_DB = 20.0
ECHO_GAIN_FRAMES = 300  # the last 3 s of such frames give the echo's gain ...
ECHO_GAIN_PERCENTILE = 95  # ... as their 95th percentile
ECHO_MARGIN_DB = 3.0
# While new, the module also takes a user over the reply 20 dB down, and their frames then fed the
# gain: in one live run of four, five of them took it from -6 to +1 dB, and the first interruption
# stopped 960 ms after the user began, no longer louder than the echo. A frame that would raise the
# gain counts only if the microphone resembles what the speaker played: the echo's frames did at
# 0.85-0.87 (5th percentile; median 1.0), the user's that raised the gain at 0.35-0.64 (two live
# runs). That run replayed: its first stop 836 -> 316 ms from the user's onset (the module still
# wipes their first syllable), the other stops as they were.
GAIN_RESEMBLES = 0.7
NEW_CANCELLER_DB = 12.0  # until settled, a frame the module took this much out of was mostly the assistant
# ... unless the microphone was louder than the echo can be (ECHO_MARGIN_DB): while new, the module also
# takes a user who talks over the reply down by 15-35 dB, and those frames kept the first interruption
# after launch from counting for 40 ms longer than later ones (live recordings replayed: 235 -> 195 ms)
# Later in a reply the module also lets the assistant through now and then, 0-10 dB down for a few
# hundred ms (recorded live: 500-900 ms into a reply; the assistant interrupted itself in 1-2 of 5
# replies). What it lets through of the assistant still resembles what the speaker played, a user
# does not: the last RESEMBLANCE_FRAMES of its output against the reference of up to
# RESEMBLANCE_LAG_FRAMES before, normalized cross-correlation. Two recorded runs: the assistant's
# frames median 0.51-0.56, the user's 0.13-0.14 (talking over the reply). Seven recorded runs (70
# replies) replayed through the module and the segmenter: self-interruptions 25 -> 6, interruptions
# stopped 29 -> 33 of 35; stop median 260 -> 285 ms from the user's first frame on the four runs
# where the assistant's leaks did not stop replies first (a user's frame resembles the reply by
# chance now and then). At 0.35 the user's stops came ~50 ms later, at 0.45 more leaks slipped in
# a reverberant room (tests/test_echo.py); pre-emphasis before correlating did worse.
RESEMBLANCE_FRAMES = 8
RESEMBLANCE_LAG_FRAMES = 16  # our timeline is 5-45 ms ahead of the microphone, plus the room
RESEMBLES = 0.4
# A microphone frame this much louder than the echo can be holds more than the assistant's voice:
# voice with such frames may hold the reply at once (voice.vad). Live with room echo (e2e, recorded
# frame by frame) what the canceller let through of the assistant seldom reached it (2 of 37 leaks),
# the e2e's user talking over the reply in 4 of 5 interruptions; at +3 dB (ECHO_MARGIN_DB) the
# simulated room's user, about as loud as the echo, did not in 2 of ~8 runs, at 0 dB in none of 5.
BEYOND_ECHO_DB = 0.0
RESIDUE_FLOOR_DB = -60.0  # quieter output is nobody's voice (the VAD's floor is -55): not worth the judging
# While the speaker has been silent for IDLE_FRAMES, and the module has heard a still room for
# STILL_FRAMES, there is nothing to cancel (a room's echo dies out within ~0.5 s) nor to learn: the
# microphone passes by the module as it is, and the module, handed neither stream, resumes where it
# stopped when the assistant speaks again, its two streams still paired. Its calls (through livekit's
# FFI, ~60 us each) were most of idle listening's CPU: the echo thread 6.3 % of a core live on the
# slower host, 1.3-1.7 % so. Only from a still room: stopped while the user spoke, it resumed as if
# they still did, and let 30 dB more of the next reply through (tests/test_echo.py). Not with noise
# suppression, which wants to hear the room all the time. Not within a reply either (3 s: longer than
# the pauses between its sentences, even on a loaded machine): on resuming, the module takes ~15 dB
# less of the first 300 ms.
IDLE_FRAMES = 300
STILL_FRAMES = 50
STILL_DB = -55.0  # quieter than the VAD's floor: nobody speaks
_SILENCE = np.zeros(FRAME, np.int16)  # the reference of a frame while the speaker is idle
_SILENCE.flags.writeable = False


class Cleaned(NamedTuple):
    """A block of microphone audio through the canceller, and its judgement."""

    pcm: np.ndarray  # int16, the echo removed
    echo_only: bool  # what is left is the assistant's own voice
    beyond_echo: bool  # the microphone heard more than the assistant's echo can be


class EchoCanceller:
    def __init__(self, config: EchoConfig, delay_ms: int) -> None:
        from livekit import rtc

        self._rtc = rtc
        self.apm = rtc.AudioProcessingModule(echo_cancellation=True, noise_suppression=config.noise_suppression,
                                             high_pass_filter=True)
        # set once: the module keeps it (a recorded live run replayed with it set before every
        # frame, as before, gave the same output to the sample; 20 instead of 60 changed 2416 frames)
        self.apm.set_stream_delay_ms(delay_ms)
        self._lock = threading.Lock()  # the playback thread adds, the echo stage takes
        self._resamplers: dict[int, soxr.ResampleStream] = {}
        self._ref = np.zeros(0, np.int16)  # reference not yet handed to the module ...
        self._ref_t = 0.0  # ... and the monotonic time its first sample sounded
        self._heard = 0  # frames of audible reference handed to the module so far
        # of the latest of them, whether the microphone picked anything up at the same time
        self._coupling: collections.deque[bool] = collections.deque(maxlen=COUPLING_FRAMES)
        self._reference_db: collections.deque[float] = collections.deque(maxlen=ECHO_SPAN_FRAMES)
        self._echo_gain: collections.deque[float] = collections.deque(maxlen=ECHO_GAIN_FRAMES)
        self._gain_db = 0.0  # their percentile, updated as each comes (np.percentile: ~40 us a call)
        self._quiet = ONSET_QUIET_FRAMES  # frames since the reference was last audible
        self._near: collections.deque[np.ndarray] = collections.deque(maxlen=RESEMBLANCE_FRAMES)  # output
        self._mic: collections.deque[np.ndarray] = collections.deque(maxlen=RESEMBLANCE_FRAMES)  # its input
        self._far: collections.deque[np.ndarray] = collections.deque(maxlen=RESEMBLANCE_FRAMES + RESEMBLANCE_LAG_FRAMES)
        self._since_onset = ONSET_FRAMES + 1  # frames since it became audible after a pause
        self._may_pass = not config.noise_suppression
        self._still = 0  # microphone frames the module has had, since the last one above STILL_DB
        log.info("echo cancellation on (stream delay %d ms, noise suppression %s)", delay_ms,
                 "on" if config.noise_suppression else "off")

    def reference(self, block: np.ndarray, sample_rate: int, t: float | None = None) -> None:
        """Audio the speaker took (float32 mono at `sample_rate`); `t`: when it was handed over, default now."""
        if sample_rate != RATE:
            stream = self._resamplers.setdefault(sample_rate, soxr.ResampleStream(sample_rate, RATE, 1, dtype="float32"))
            block = stream.resample_chunk(block.astype(np.float32))
        now = time.monotonic() if t is None else t
        with self._lock:
            end = self._ref_t + len(self._ref) / RATE
            if end >= now:  # the speaker is still busy with earlier blocks: this one follows them
                self._ref = np.concatenate([self._ref, to_int16(block)])
            elif now - end < HISTORY_S:  # it fell idle a moment ago: silence, then this block
                gap = np.zeros(int(round((now - end) * RATE)), np.int16)
                self._ref = np.concatenate([self._ref, gap, to_int16(block)])
            else:
                self._ref, self._ref_t = to_int16(block), now

    def discard(self, t: float | None = None) -> None:
        """The speaker dropped what it had not yet played (at `t`, default now): so does the
        reference. Those blocks never sounded; the module, told they did while the microphone
        heard nothing, trusted its echo path less at the next reply's start (seen in recordings
        of replies cut at once)."""
        now = time.monotonic() if t is None else t
        with self._lock:
            self._ref = self._ref[:max(0, int(round((now - self._ref_t) * RATE)))]

    def process(self, pcm: np.ndarray, t: float | None = None) -> Cleaned:
        """Microphone audio (int16 at 16 kHz, a whole number of 10 ms frames) with the echo removed,
        whether what is left of it is the assistant's own voice (see `_echo_only`), and whether the
        microphone heard more than the echo can be; `t`: when its last sample was captured, default now."""
        start = (time.monotonic() if t is None else t) - len(pcm) / RATE
        if self._idle(pcm, start):
            return Cleaned(pcm, False, True)
        out = np.empty_like(pcm)
        echo_only = True
        for i in range(0, len(pcm) - FRAME + 1, FRAME):
            reference, mic = self._reference_at(start + i / RATE), pcm[i:i + FRAME]
            audible = np.abs(reference).max() > AUDIBLE
            if audible:
                self._heard += 1
                self._coupling.append(bool(np.abs(mic).max() > AUDIBLE))
            if self._passes_by(audible, mic):
                out[i:i + FRAME] = mic
            else:
                self.apm.process_reverse_stream(self._frame(reference))
                frame = self._frame(mic)
                self.apm.process_stream(frame)
                out[i:i + FRAME] = np.frombuffer(frame.data, np.int16)
            echo_only &= self._echo_only(audible, reference, mic, out[i:i + FRAME])
        over_echo_db = self._over_echo_db(pcm)
        if not self.hears_speaker:
            return Cleaned(pcm, False, True)
        echo_only = echo_only or (over_echo_db < ECHO_MARGIN_DB and self._resembles_reference(out))
        return Cleaned(out, echo_only, over_echo_db >= BEYOND_ECHO_DB)

    @property
    def _passing(self) -> bool:
        """The speaker silent for IDLE_FRAMES after a still room's STILL_FRAMES: the module is passed by."""
        return self._may_pass and self._quiet >= IDLE_FRAMES and self._still >= STILL_FRAMES

    def _idle(self, pcm: np.ndarray, start: float) -> bool:
        """Whether a block from `start` passes the module by, the speaker silent throughout: then
        its frames are only counted, as the loop in `process` would (the echo thread 1.4 -> 0.8 % of a
        core of idle listening on an AVX2 AMD host; the result and the state after are the same)."""
        if not self._passing:
            return False
        frames = len(pcm) // FRAME
        with self._lock:
            if len(self._ref):  # the speaker has something to play
                return False
            last = int(round((start + (frames - 1) * FRAME / RATE - self._ref_t) * RATE))
            if last > 0:
                self._ref_t += last / RATE
        self._quiet += frames
        self._since_onset += frames
        heard = [pcm[i:i + FRAME] for i in range(0, frames * FRAME, FRAME)]
        self._near.extend(heard)
        self._mic.extend(heard)
        self._far.extend([_SILENCE] * frames)
        return True

    def _passes_by(self, audible: bool, mic: np.ndarray) -> bool:
        """Whether this 10 ms frame may pass the module by (IDLE_FRAMES). Once it does, so do the
        frames after it until the speaker sounds: the count of still frames stands meanwhile."""
        passing = not audible and self._passing
        if not passing:
            self._still = self._still + 1 if dbfs(mic) < STILL_DB else 0
        return passing

    def _echo_only(self, audible: bool, reference: np.ndarray, mic: np.ndarray, out: np.ndarray) -> bool:
        """Whether a 10 ms frame's remains (`out`) are the assistant's voice: one no louder than its
        echo would be, if the module is new and took most of it, or at the start of a reply."""
        if audible and self._quiet >= ONSET_QUIET_FRAMES:
            self._since_onset = 0
        self._quiet = 0 if audible else self._quiet + 1
        self._since_onset += 1
        self._near.append(out)
        self._mic.append(mic)
        self._far.append(reference)
        if self._quiet >= ECHO_SPAN_FRAMES:  # nothing the microphone could still be hearing
            self._reference_db.clear()
            return False
        self._reference_db.append(dbfs(reference))
        mic_db = dbfs(mic)
        echo_db, removed = max(self._reference_db), mic_db - dbfs(out)
        if removed > CLEARLY_ECHO_DB:
            self._measure_gain(mic_db - echo_db)
        suspect = (not self.settled and removed > NEW_CANCELLER_DB) or self._since_onset <= ONSET_FRAMES
        return suspect and mic_db < echo_db + self._echo_gain_db() + ECHO_MARGIN_DB

    def _measure_gain(self, gain_db: float) -> None:
        """A frame the module took most of: its level against the echo's is a sample of the gain,
        if no higher than the gain so far, or if the microphone heard what the speaker played
        (GAIN_RESEMBLES; judged only for those: one in fifteen, in live runs)."""
        if (gain_db <= self._echo_gain_db() or len(self._far) < self._far.maxlen
                or resemblance(np.concatenate(self._mic), np.concatenate(self._far)) >= GAIN_RESEMBLES):
            self._echo_gain.append(gain_db)
            if len(self._echo_gain) >= COUPLING_FRAMES // 4:
                self._gain_db = float(np.percentile(self._echo_gain, ECHO_GAIN_PERCENTILE))

    def _resembles_reference(self, out: np.ndarray) -> bool:
        """Whether what the module let through lately (its last RESEMBLANCE_FRAMES of output, of
        which `out` is the latest) is what the speaker played, with any lag up to
        RESEMBLANCE_LAG_FRAMES."""
        return (self._quiet < ECHO_SPAN_FRAMES and len(self._far) == self._far.maxlen
                and dbfs(out) > RESIDUE_FLOOR_DB
                and resemblance(np.concatenate(self._near), np.concatenate(self._far)) >= RESEMBLES)

    def _over_echo_db(self, mic: np.ndarray) -> float:
        """How much louder the microphone was than the assistant's echo can be (the reference's level
        over the last ECHO_SPAN_FRAMES plus the measured gain); infinite when the speaker has been
        quiet that long. A user who starts talking over the reply: the module takes 15-30 dB off
        their first syllables, so that what is left is mostly the echo's remains and resembles the
        reference (seen in the simulated room on an Intel host: 4 of 16 of the user's frames; the
        module's own leaks were at most 1.2 dB above their echo there)."""
        if not self._reference_db:
            return float("inf")
        return dbfs(mic) - max(self._reference_db) - self._echo_gain_db()

    def _echo_gain_db(self) -> float:
        """The echo's level against the reference's, as measured; until then as loud as it."""
        return self._gain_db

    @property
    def hears_speaker(self) -> bool:
        """Whether the microphone picks up the speaker (assumed until a quarter second of the
        assistant's voice has shown otherwise). If not (headphones), there is no echo to remove,
        and the module, which in its first seconds also takes 20 dB off a user who talks over
        the assistant, is kept out of the way."""
        coupling = self._coupling
        return len(coupling) < COUPLING_FRAMES // 4 or 2 * sum(coupling) >= len(coupling)

    @property
    def settled(self) -> bool:
        """Whether its output can be trusted: in its first seconds of the assistant's voice the
        module lets the start of a phrase after a pause through (measured: up to -22 dBFS)."""
        return self._heard * FRAME >= SETTLE_S * RATE

    def _reference_at(self, t: float) -> np.ndarray:
        """The 10 ms of reference that sounded from `t` (silence where none did); older is dropped."""
        with self._lock:
            i = int(round((t - self._ref_t) * RATE))
            frame = np.zeros(FRAME, np.int16)
            lo, hi = max(i, 0), min(i + FRAME, len(self._ref))
            if lo < hi:
                frame[lo - i:hi - i] = self._ref[lo:hi]
            if i > 0:
                self._ref, self._ref_t = self._ref[i:], self._ref_t + i / RATE
            return frame

    def _frame(self, pcm: np.ndarray):
        return self._rtc.AudioFrame(bytearray(pcm.tobytes()), RATE, 1, FRAME)


def resemblance(near: np.ndarray, far: np.ndarray) -> float:
    """How much `near` looks like some stretch of the longer `far`: the largest normalized
    cross-correlation over every lag, 1 for a scaled (or inverted) copy, ~0.1 for unrelated speech."""
    near, far = near.astype(np.float64), far.astype(np.float64)
    lags = len(far) - len(near) + 1
    size = 1 << (len(far) - 1).bit_length()  # no lag wraps around: every product stays within `far`
    dot = np.fft.irfft(np.fft.rfft(far, size) * np.conj(np.fft.rfft(near, size)), size)[:lags]
    cumulative = np.concatenate([[0.0], np.cumsum(far ** 2)])
    far_energy = cumulative[len(near):len(near) + lags] - cumulative[:lags]
    near_energy = float(np.sum(near ** 2))
    valid = far_energy > 1e-6 * far_energy.max()  # 60 dB below the loudest stretch, the ratio is rounding noise
    if near_energy == 0.0 or not valid.any():
        return 0.0
    return float(np.max(np.abs(dot[valid]) / np.sqrt(near_energy * far_energy[valid])))


class EchoStage(Stage):
    """AudioFrame in, the same frame with the assistant's echo removed out."""

    def __init__(self, canceller: EchoCanceller, inbox: queue.Queue, outbox: queue.Queue,
                 stop: threading.Event, bus: EventBus) -> None:
        super().__init__("echo", inbox, outbox, stop, bus)
        self.canceller = canceller

    def handle(self, frame: AudioFrame) -> None:
        cleaned = self.canceller.process(frame.pcm, frame.t)
        self.emit(AudioFrame(cleaned.pcm, frame.sample_rate, frame.t, cleaned.echo_only, cleaned.beyond_echo))

