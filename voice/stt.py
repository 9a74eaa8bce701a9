"""Speech to text: faster-whisper behind a small Transcriber protocol, and the STT stage."""

from __future__ import annotations

import logging
import re
import queue
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .config import SttConfig
from .frames import Transcript, Utterance, WarmUp
from .models import ModelError, whisper_model_dir
from .own_voice import OwnWords
from .stage import EventBus, Stage
from .wake import WakePhrase

log = logging.getLogger(__name__)

WHISPER_WINDOW = 30 * 16000  # samples Whisper's encoder was trained on
SHORT_WINDOW = 10 * 16000  # samples a short encode pads to (at least 1 s more than the audio)
TOKENS_PER_S = 10  # a generous bound on Whisper tokens per second of speech (stops runaway loops)
WARM_UP_AUDIO = np.zeros(8000, np.float32)  # half a second of silence: the same window as a question


@dataclass(frozen=True)
class Recognition:
    text: str
    no_speech_prob: float  # Whisper's probability that the audio held no speech
    avg_logprob: float  # mean token log-probability of the text


class Transcriber(Protocol):
    def transcribe(self, audio: np.ndarray) -> Recognition:
        """16 kHz mono float32 audio in [-1, 1] to text."""
        ...


class WhisperTranscriber:
    """faster-whisper (CTranslate2) on the CPU. The lazy segment generator is consumed here."""

    def __init__(self, config: SttConfig) -> None:
        from faster_whisper import WhisperModel

        path = whisper_model_dir(config.model)
        try:
            self.model = WhisperModel(str(path), device="cpu", compute_type=config.compute_type,
                                      cpu_threads=config.threads)
        except (RuntimeError, ValueError, OSError) as e:
            raise ModelError(f"cannot load the Whisper model at {path}: {e}") from e
        self.config = config
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self.tokenizer = Tokenizer(self.model.hf_tokenizer, self.model.model.is_multilingual,
                                   task="transcribe", language=config.language)
        self.prompt = self.model.get_prompt(self.tokenizer, [], without_timestamps=True)
        self.suppress = get_suppressed_tokens(self.tokenizer, [-1])
        log.info("stt: Whisper from %s", path)

    def transcribe(self, audio: np.ndarray) -> Recognition:
        if self.config.short_encode and len(audio) + 16000 < WHISPER_WINDOW:
            return self._transcribe_short(audio)
        return self._transcribe_padded(audio)

    def _transcribe_short(self, audio: np.ndarray) -> Recognition:
        """Encode a 10 s window (or twice the audio, up to 30 s), not Whisper's 30 s.

        faster-whisper pads every utterance to 30 s, so tiny.en spends ~450 ms on 2 cores
        whatever the length; CTranslate2's encoder takes shorter inputs. With only 1-2 s of
        padding tiny.en tends to repeat the last phrase of short clips; from 10 s on, the
        transcripts of the recorded clips match the 30 s ones (tests/test_stt.py), in 50-130 ms.
        """
        window = min(WHISPER_WINDOW, max(SHORT_WINDOW, 2 * len(audio)))  # silence at least as long as the speech
        pad = max(16000, window - len(audio))
        padded = np.concatenate([audio, np.zeros(pad, np.float32)])
        features = self.model.feature_extractor(padded)[..., :-1]
        encoded = self.model.encode(features)
        max_tokens = len(self.prompt) + 8 + int(len(audio) / 16000 * TOKENS_PER_S)
        result = self.model.model.generate(
            encoded, [self.prompt], beam_size=self.config.beam_size, max_length=min(224, max_tokens),
            return_scores=True, return_no_speech_prob=True, suppress_blank=True,
            suppress_tokens=self.suppress)[0]
        tokens = [t for t in result.sequences_ids[0] if t < self.tokenizer.eot]
        text = unloop(self.tokenizer.decode(tokens).strip())
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        return Recognition(text, result.no_speech_prob, avg_logprob)

    def _transcribe_padded(self, audio: np.ndarray) -> Recognition:
        segments, _info = self.model.transcribe(
            audio, language=self.config.language, beam_size=self.config.beam_size,
            without_timestamps=True, condition_on_previous_text=False, vad_filter=False,
            temperature=0.0)
        segments = list(segments)
        if not segments:
            return Recognition("", 1.0, -10.0)
        text = " ".join(s.text.strip() for s in segments).strip()
        no_speech = min(s.no_speech_prob for s in segments)
        logprob = float(np.mean([s.avg_logprob for s in segments]))
        return Recognition(text, no_speech, logprob)


def unloop(text: str, max_phrase: int = 12) -> str:
    """Undo Whisper's loop on a short clip: a phrase said again and again up to the end of
    the text (the last copy often cut off by the token cap) is kept once. "Produced the block
    books, produced the block books, produced the block" -> "Produced the block books,".
    Single repeated words ("very very good") and repeats followed by new words stay."""
    words = text.split()
    key = [re.sub(r"\W", "", w.lower()) for w in words]

    def copies_to_end(i: int, n: int) -> bool:
        j = i + n
        while key[j:j + n] == key[i:i + n]:
            j += n
        tail, copy = key[j:], key[i:i + len(key) - j]
        if not tail:
            return j > i + n
        partial = tail[:-1] == copy[:-1] and copy[-1].startswith(tail[-1])
        return partial and (j > i + n or len(tail) >= max(2, (n + 1) // 2))

    for n in range(2, min(max_phrase, len(words) - 2) + 1):
        for i in range(0, len(words) - n - 1):
            if copies_to_end(i, n):
                return " ".join(words[:i + n])
    return text


def is_hallucination(r: Recognition, config: SttConfig) -> bool:
    """Whisper's usual answer to noise: an improbable text where it also thinks nobody spoke."""
    if not r.text.strip(" .,!?-"):
        return True
    return r.no_speech_prob > config.no_speech_threshold and r.avg_logprob < config.logprob_threshold


class SttStage(Stage):
    """Utterance in, Transcript out. Empty or hallucinated transcripts end the turn with a reason."""

    def __init__(self, config: SttConfig, transcriber: Transcriber, inbox: queue.Queue, outbox: queue.Queue,
                 stop: threading.Event, bus: EventBus, wake: WakePhrase | None = None,
                 is_retracted=lambda turn_id: False, own_words: OwnWords | None = None) -> None:
        super().__init__("stt", inbox, outbox, stop, bus)
        self.config, self.transcriber = config, transcriber
        self.wake = wake  # wake phrase mode: only transcripts with the phrase go on
        self.is_retracted = is_retracted
        self.own_words = own_words  # what the assistant said lately: a turn over the reply may be its echo

    def handle(self, utt: Utterance | WarmUp) -> None:
        if isinstance(utt, WarmUp):  # see Pipeline.start
            self.transcriber.transcribe(WARM_UP_AUDIO)
            return
        if self.is_retracted(utt.turn_id):  # the user spoke on while it waited here: its words come again
            log.debug("turn %d retracted before transcription", utt.turn_id)
            return
        audio = utt.pcm.astype(np.float32) / 32768.0
        result = self.transcriber.transcribe(audio)
        now = time.monotonic()
        if self.is_retracted(utt.turn_id):  # ... or while Whisper listened: nobody is to see these words
            log.debug("turn %d retracted during transcription", utt.turn_id)
            return
        if is_hallucination(result, self.config):
            log.info("turn %d dropped: no speech recognised (%r, no_speech=%.2f, logprob=%.2f)",
                     utt.turn_id, result.text, result.no_speech_prob, result.avg_logprob)
            self.bus.emit("turn_dropped", utt.turn_id, "no speech recognised", t=now)
            return
        text = result.text
        if utt.over_reply and self.own_words is not None and self.own_words.echoes(text, utt.t_speech_start):
            log.info("turn %d dropped: the assistant's own words (%r)", utt.turn_id, text)
            self.bus.emit("turn_dropped", utt.turn_id, "its own voice", t=now, heard=text)
            return
        if self.wake is not None:
            woken = self.wake.check(text, utt.t_speech_start, utt.t_speech_end)
            if woken.action != "answer":
                log.info("turn %d dropped: %s (%r)", utt.turn_id, woken.reason, text)
                self.bus.emit("turn_dropped", utt.turn_id, woken.reason, t=now, heard=text, wake=woken.action)
                return
            text = woken.text
        self.bus.emit("transcript", utt.turn_id, text, t=now)
        self.emit(Transcript(utt.turn_id, text, now))

    def failed(self, utt: Utterance | WarmUp, error: Exception) -> None:
        """Whisper raised: the turn ends here, with the reason, and the next one goes on."""
        if isinstance(utt, Utterance):  # a warm-up that failed is only reported (`error`)
            self.bus.emit("turn_dropped", utt.turn_id, f"transcription failed: {error}")
