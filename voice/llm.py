"""The language model: a ChatModel protocol, llama.cpp behind it, and the LLM stage.

The stage streams tokens, cuts them into sentences for TTS as they arrive (so the first
sentence is spoken while the rest is written), and keeps the conversation history.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Iterator, Protocol

from .config import LlmConfig
from .frames import ReplyEnd, ReplySentence, Transcript, WarmUp
from .heap import release_freed_memory
from .history import Conversation
from .models import ModelError, gguf_file
from .sentences import SentenceSplitter
from .stage import EventBus, Stage

log = logging.getLogger(__name__)

FIRST_AUDIO_WAIT_S = 0.3  # the longest the model pauses for Piper's first sentence (measured 50-170 ms)


class ChatModel(Protocol):
    context_tokens: int
    backend: str  # which backend answered the latest stream: "local" or "openai"

    def stream(self, messages: list[dict], cancel: threading.Event) -> Iterator[str]:
        """Reply tokens as they are generated; stops early once `cancel` is set."""
        ...

    def count_tokens(self, text: str) -> int: ...


class ChatModelUnavailable(RuntimeError):
    """The model cannot answer this turn (its server is down, refused, slow or failing).

    `reply` is the short message the user hears instead; the next turn tries again."""

    def __init__(self, reply: str, reason: str) -> None:
        super().__init__(f"{reply} ({reason})")
        self.reply, self.reason = reply, reason


class LlamaChatModel:
    """A GGUF model in-process with llama-cpp-python, using the chat template in its metadata."""

    backend = "local"

    def __init__(self, config: LlmConfig) -> None:
        from llama_cpp import Llama

        path = gguf_file(config.model)
        try:
            # prompts are read 128 tokens at a time: as fast as 512 here, and the attention buffers
            # a long prompt fills are a quarter the size (+21 MB instead of +53 MB for 1900 tokens)
            self.llama = Llama(str(path), n_ctx=config.context_tokens, n_threads=config.threads,
                               n_threads_batch=config.batch_threads, n_ubatch=128, seed=config.seed, verbose=False)
        except (RuntimeError, ValueError, OSError) as e:
            raise ModelError(f"cannot load the GGUF model at {path}: {e}") from e
        self.config = config
        self.context_tokens = config.context_tokens
        self.name = path.name
        log.info("llm: %s (%d-token context)", path, config.context_tokens)

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def stream(self, messages: list[dict], cancel: threading.Event) -> Iterator[str]:
        chunks = self.llama.create_chat_completion(messages, stream=True, max_tokens=self.config.max_tokens,
                                                   temperature=self.config.temperature, seed=self.config.seed)
        try:
            for chunk in chunks:
                if cancel.is_set():
                    break
                token = chunk["choices"][0]["delta"].get("content")
                if token:
                    yield token
        finally:
            chunks.close()  # stops generation at once when the consumer gives up

    def write_alone(self, alone: bool) -> None:
        """Write the next tokens on `batch_threads` (alone: nothing else runs, as for a reply's
        first sentence, which Piper waits for) or on `threads` (Piper speaks alongside)."""
        import llama_cpp

        threads = self.config.batch_threads if alone else self.config.threads
        llama_cpp.llama_set_n_threads(self.llama.ctx, threads, self.config.batch_threads)

    def prefill(self, messages: list[dict]) -> None:
        """Read `messages` into the KV cache (llama.cpp keeps the longest common beginning of
        the prompts), so a prompt that starts with them costs only its new tokens."""
        for _ in self.stream(messages, threading.Event()):
            break


class LlmStage(Stage):
    """Transcript in; ReplySentence frames and a closing ReplyEnd out.

    It reads the conversation but does not write it: what goes into the history is what
    the user heard, which only playback knows (see Pipeline._remember).

    Every call into the model is made on this stage's thread, the system prompt's first reading
    included (a WarmUp queued at start). llama.cpp's threads meet at a barrier after each operation,
    and libgomp, its OpenMP runtime, keeps a team of threads for every thread that has called it:
    with a second team alive it counts more threads than cores and waits at those barriers asleep
    instead of spinning. Measured on an Intel host: 32 ms a token on two threads instead of 10 (18
    on one) once the main thread had read the system prompt at load, prompts as slow."""

    def __init__(self, model: ChatModel, conversation: Conversation, inbox: queue.Queue, outbox: queue.Queue,
                 stop: threading.Event, bus: EventBus, first_clause_words: int = 0, max_piece_words: int = 0,
                 cancel_for=lambda turn_id: threading.Event(), skills=None,
                 committed=lambda turn_id: True) -> None:
        super().__init__("llm", inbox, outbox, stop, bus)
        self.model, self.conversation = model, conversation
        self.first_clause_words, self.max_piece_words = first_clause_words, max_piece_words
        self.cancel_for = cancel_for
        self.skills = skills  # a SkillRouter (voice.skills): tried before the model
        self.committed = committed  # blocks until the turn is certain (True) or taken back (False)
        self.reply_lock = threading.RLock()  # held while one reply is queued; `say` never splices into one
        self._first_audio: dict[int, threading.Event] = {}  # turn -> set once its first sentence is synthesized
        bus.subscribe(self._on_first_audio)

    def handle(self, item: Transcript | WarmUp) -> None:
        if isinstance(item, WarmUp):
            self._warm_up()
            return
        transcript = item
        with self.reply_lock:
            answer = self.skills.route(transcript.text) if self.skills is not None else None
            if answer is None:
                self._model_reply(transcript)
                return
            self.bus.emit("skill", transcript.turn_id, answer.text, skill=answer.skill, remember=answer.remember)
            self.say(transcript.turn_id, answer.text, then=answer.action, skill=answer.skill)

    def _let_piper_speak(self, first_audio: threading.Event, cancel: threading.Event) -> None:
        """Pause until the first sentence's first sound is synthesized: Piper then has both cores
        for the sound the user waits for (first audio 84-90 -> 68 ms p50 in the bench, when that was
        the whole sentence), and the rest of the reply has the time that sentence plays. Not for a
        turn cancelled meanwhile."""
        deadline = time.monotonic() + FIRST_AUDIO_WAIT_S
        while not (first_audio.wait(0.01) or cancel.is_set() or self.stop.is_set() or time.monotonic() > deadline):
            pass

    def _on_first_audio(self, event) -> None:
        """(on the TTS thread) The first sentence of a reply being written is synthesized."""
        first_audio = self._first_audio.get(event.turn_id) if event.kind == "tts_audio" else None
        if first_audio is not None:
            first_audio.set()

    def _warm_up(self) -> None:
        """Between turns: read the conversation so far, so that the next turn's prompt costs only
        the user's new words (~20 tokens instead of the last reply and them, or after a restart
        or a trim of the history, instead of all of it: ~4 s for 1900 tokens on 2 cores)."""
        if not self.inbox.empty():  # a turn waiting goes first
            return
        if hasattr(self.model, "prefill"):
            self.model.prefill(self.conversation.messages(""))
        release_freed_memory()

    def say(self, turn_id: int, text: str, then=None, **data) -> None:
        """A whole reply not written by the model (a skill's, an announcement): same sentences, same path.

        `then` (a skill's action) runs before the ReplyEnd, once the turn is certain: a speculative
        "set a timer" that the user talks on from sets none."""
        splitter = SentenceSplitter(max_words=self.max_piece_words)
        with self.reply_lock:
            if text:
                self.bus.emit("first_token", turn_id, **data)
            index = 0
            for sentence in [*splitter.push(text), *splitter.flush()]:
                index = self._sentence(turn_id, index, sentence, **data)
            if then is not None and self.committed(turn_id):
                then()
            self.emit(ReplyEnd(turn_id, text))

    def _model_reply(self, transcript: Transcript) -> None:
        turn_id = transcript.turn_id
        cancel = self.cancel_for(turn_id)
        splitter = SentenceSplitter(self.first_clause_words, self.max_piece_words)
        reply, index = "", 0
        if cancel.is_set():  # taken back (barge-in, or the user spoke on) while it waited here
            self.emit(ReplyEnd(turn_id, ""))
            return
        first_audio = self._first_audio[turn_id] = threading.Event()
        write_alone = getattr(self.model, "write_alone", lambda alone: None)
        write_alone(True)
        try:
            for token in self.model.stream(self.conversation.messages(transcript.text), cancel):
                if self.stop.is_set():
                    return
                if not reply:
                    self.bus.emit("first_token", turn_id, backend=getattr(self.model, "backend", "local"))
                reply += token
                for sentence in splitter.push(token):
                    index = self._sentence(turn_id, index, sentence)
                    if index == 1:
                        self._let_piper_speak(first_audio, cancel)
                        write_alone(False)
            for sentence in splitter.flush():
                index = self._sentence(turn_id, index, sentence)
        except ChatModelUnavailable as e:  # expected when a server is down: one log line, no traceback
            log.warning("turn %d: %s", turn_id, e)
            self.bus.emit("llm_unreachable", turn_id, e.reason)
            for sentence in [*splitter.flush(), e.reply]:
                index = self._sentence(turn_id, index, sentence)
            reply = f"{reply.strip()} {e.reply}"
        finally:  # the pipeline adds the turn to the history once it has been heard
            self._first_audio.pop(turn_id, None)
            self.emit(ReplyEnd(turn_id, reply.strip()))

    def _sentence(self, turn_id: int, index: int, text: str, **data) -> int:
        self.bus.emit("sentence", turn_id, text, index=index, **data)
        self.emit(ReplySentence(turn_id, index, text, time.monotonic()))
        return index + 1
