"""Typed frames: the only things that travel on the pipeline's queues.

Every field says its unit. Audio is mono; `pcm` is int16 for microphone audio and
float32 in [-1, 1] for synthesized audio. Times are `time.monotonic()` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class AudioFrame:
    """A block of captured audio."""

    pcm: np.ndarray  # int16, mono
    sample_rate: int  # Hz
    t: float  # monotonic seconds at the frame's last sample
    echo_only: bool = False  # the echo canceller judged what is left of it the assistant's own voice
    beyond_echo: bool = True  # the microphone heard more than the assistant's echo can be (no echo: anything)

    @property
    def duration(self) -> float:
        """Seconds of audio in the frame."""
        return len(self.pcm) / self.sample_rate


@dataclass(frozen=True)
class Utterance:
    """One turn of user speech, cut by the VAD segmenter (pre-roll included)."""

    turn_id: int
    pcm: np.ndarray  # int16, mono
    sample_rate: int  # Hz
    t_speech_start: float  # monotonic s, first voiced frame
    t_speech_end: float  # monotonic s, last voiced frame
    t_decided: float  # monotonic s, when end-of-turn was decided
    over_reply: bool = False  # it began while the assistant spoke

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.sample_rate


@dataclass(frozen=True)
class WarmUp:
    """To a model's stage while nobody speaks: the LLM reads the conversation into its cache (at
    start and between turns); Whisper and Piper run once on nothing (at the first start), so the
    first question does not pay their first call's cost."""


@dataclass(frozen=True)
class Transcript:
    turn_id: int
    text: str
    t_ready: float  # monotonic s


@dataclass(frozen=True)
class ReplySentence:
    """A sentence (or first clause) of the reply, ready for synthesis."""

    turn_id: int
    index: int  # 0-based position in the reply
    text: str
    t: float  # monotonic s when it was complete


@dataclass(frozen=True)
class ReplyEnd:
    """The reply for `turn_id` has no more sentences."""

    turn_id: int
    text: str  # the whole reply as generated


@dataclass(frozen=True)
class SpeechAudio:
    """Synthesized audio of one sentence, or of a part of it (`begins`, `ends`)."""

    turn_id: int
    index: int  # sentence index
    text: str
    pcm: np.ndarray  # float32 in [-1, 1], mono
    sample_rate: int  # Hz
    t: float  # monotonic s when synthesis finished
    begins: float = 0.0  # the part of the sentence's audio it holds, as fractions of it
    ends: float = 1.0

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.sample_rate


@dataclass(frozen=True)
class PushToTalk:
    """Control: the push-to-talk key (or button) went down (`pressed`) or up."""

    pressed: bool
    t: float  # monotonic s of the key event


@dataclass(frozen=True)
class Mute:
    """Control: stop (or resume) feeding microphone frames to the VAD."""

    muted: bool
    t: float  # monotonic s


@dataclass(frozen=True)
class EndOfStream:
    """Drain marker: each stage forwards it after everything before it, then returns."""


END = EndOfStream()


@dataclass(frozen=True)
class Event:
    """Something the user interface, metrics or logs may want to know.

    kind is one of: listening, speech_start, speech_end, turn_decided (data["early_ms"] when
    the turn ended before the end-of-turn window ran out: then turn_final follows once it has,
    unless the user spoke on and it is turn_retracted), turn_final, transcript,
    first_token, sentence, tts_audio, playback_start, playback_end, reply_done,
    turn_dropped, interrupted, error, state, llm_unreachable (the chat model could not answer;
    text = why). first_token carries data["backend"]: which backend answered.
    level: microphone level, ~20 Hz, data["dbfs"]; push_to_talk: data["pressed"];
    muted: data["muted"]. reply_held / reply_resumed: voice over the reply silenced it until
    barge-in decides, and it was no interruption (voice.vad.VadStage._talked_over). device: a microphone or speaker was lost or is back (text = the
    line for the user; see voice/devices.py).
    skill: a skill answered the turn instead of the LLM (text = its reply, data["skill"],
    data["remember"]); its first_token and sentence events carry data["skill"] too.
    announcement: the assistant speaks unprompted, e.g. a timer ended (a turn of its own;
    text = what it says, data["skill"]).
    """

    kind: str
    turn_id: int | None = None
    t: float = 0.0  # monotonic s
    text: str = ""
    data: dict = field(default_factory=dict)
