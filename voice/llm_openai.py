"""A ChatModel on any OpenAI-compatible chat-completions server (llama.cpp, Ollama, vLLM, LM Studio, ...).

Tokens stream over server-sent events from the first one. Cancelling a reply, or the
consumer leaving the iterator, closes the HTTP response, so the server sees the client
go and stops generating. A server that is down, refuses, answers with an HTTP error or
stays silent past `timeout_s` makes `stream` raise ChatModelUnavailable, whose `reply`
("I can't reach the language model at ...") the LLM stage speaks; the next turn tries again.
With `fallback_to_local`, the in-process GGUF answers such a turn instead.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from contextlib import closing
from typing import Callable, Iterator

import httpx
from httpx_sse import SSEError, connect_sse

from .config import Config, LlmConfig
from .llm import ChatModel, ChatModelUnavailable, LlamaChatModel
from .models import ModelError, gguf_file

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 3  # a conservative guess for history trimming when the server offers no tokenizer


class OpenAIChatModel:
    """Streams a chat completion from `config.base_url` + /chat/completions."""

    backend = "openai"

    def __init__(self, config: LlmConfig, client: httpx.Client | None = None) -> None:
        self.config = config
        self.base_url = config.base_url.rstrip("/")
        self.context_tokens = config.context_tokens
        self.unreachable = f"I can't reach the language model at {self.base_url}."
        self._model: str | None = config.api_model or None
        headers = {}
        key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        elif config.api_key_env:
            log.debug("llm: %s is not set; sending no API key", config.api_key_env)
        self.client = client or httpx.Client(timeout=httpx.Timeout(config.timeout_s))
        self.client.headers.update(headers)
        log.info("llm: OpenAI-compatible server at %s (model %s)", self.base_url, config.api_model or "from /models")

    def count_tokens(self, text: str) -> int:
        return len(text) // CHARS_PER_TOKEN + 1

    def stream(self, messages: list[dict], cancel: threading.Event) -> Iterator[str]:
        if cancel.is_set():
            return
        body = {"messages": messages, "stream": True, "max_tokens": self.config.max_tokens,
                "temperature": self.config.temperature, "seed": self.config.seed}
        try:
            model = self._model_name()
            if model:
                body["model"] = model
            with connect_sse(self.client, "POST", f"{self.base_url}/chat/completions", json=body) as events:
                _raise_for_status(events.response)
                deadline = time.monotonic() + self.config.timeout_s
                answered = False
                for event in events.iter_sse():  # leaving this block closes the response
                    if cancel.is_set() or event.data.strip() == "[DONE]":
                        return
                    token = _delta(event.data)
                    if token:
                        answered = True
                        yield token
                    elif not answered and time.monotonic() > deadline:
                        raise httpx.ReadTimeout(f"no token within {self.config.timeout_s:g} s")
        except (httpx.HTTPError, SSEError, ValueError) as e:
            raise ChatModelUnavailable(self.unreachable, _reason(e)) from e

    def _model_name(self) -> str | None:
        """The configured model, or the first one the server lists (asked once; "" if it names none)."""
        if self._model is None:
            response = self.client.get(f"{self.base_url}/models")
            if response.status_code in (404, 405):  # some servers have no /models; they take a request without one
                self._model = ""
            else:
                _raise_for_status(response)
                body = response.json()
                listed = body.get("data") if isinstance(body, dict) else None
                self._model = str(listed[0].get("id", "")) if listed and isinstance(listed[0], dict) else ""
            log.info("llm: the server's model is %s", self._model or "(unnamed)")
        return self._model

    def warm_up(self, system_prompt: str) -> None:
        """Ask for one token, so the server caches the system prompt; a server that is down only logs."""
        try:
            for _ in self.stream([{"role": "system", "content": system_prompt}, {"role": "user", "content": "Hi"}],
                                 threading.Event()):
                break
        except ChatModelUnavailable as e:
            log.warning("%s; each turn will try again", e)

    def close(self) -> None:
        self.client.close()


class FallbackChatModel:
    """The server first; for a turn it cannot answer, the local GGUF (loaded on first need)."""

    def __init__(self, remote: OpenAIChatModel, load_local: Callable[[], ChatModel]) -> None:
        self.remote, self._load_local = remote, load_local
        self._local: ChatModel | None = None
        self._lock = threading.Lock()
        self.context_tokens = remote.context_tokens
        self.backend = remote.backend

    def count_tokens(self, text: str) -> int:
        return self.remote.count_tokens(text)

    def stream(self, messages: list[dict], cancel: threading.Event) -> Iterator[str]:
        self.backend = self.remote.backend
        started = False
        try:
            with closing(self.remote.stream(messages, cancel)) as tokens:  # closed (so is the HTTP stream) if we are
                for token in tokens:
                    started = True
                    yield token
            return
        except ChatModelUnavailable as e:
            if started:  # half a reply has been spoken; a second voice would not make sense of it
                raise
            log.warning("%s; the local model answers instead", e)
            local = self._local_model(e)
        self.backend = local.backend
        yield from local.stream(messages, cancel)

    def _local_model(self, cause: ChatModelUnavailable) -> ChatModel:
        with self._lock:
            if self._local is None:
                try:
                    self._local = self._load_local()
                except ModelError as e:
                    raise ChatModelUnavailable(cause.reply, f"{cause.reason}; no local fallback: {e}") from e
            return self._local

    def warm_up(self, system_prompt: str) -> None:
        self.remote.warm_up(system_prompt)


def make_chat_model(config: Config) -> ChatModel:
    """The chat model that `config.llm.backend` selects."""
    llm = config.llm
    if llm.backend == "local":
        return LlamaChatModel(llm)
    remote = OpenAIChatModel(llm)
    if llm.fallback_to_local:
        gguf_file(llm.model)  # a fallback that could never load is a start-up error, not a surprise later
        return FallbackChatModel(remote, lambda: LlamaChatModel(llm))
    return remote


def _raise_for_status(response: httpx.Response) -> None:
    if response.is_error:
        response.read()  # a streamed error body is not read yet
        raise httpx.HTTPStatusError(f"HTTP {response.status_code}: {response.text[:200].strip()}",
                                    request=response.request, response=response)


def _delta(data: str) -> str | None:
    """The text of one streamed chunk; a chunk that reports an error raises ValueError."""
    chunk = json.loads(data)
    if not isinstance(chunk, dict):
        raise ValueError(f"unexpected chunk: {data[:200]}")
    if "error" in chunk:
        error = chunk["error"]
        raise ValueError(f"server error: {error.get('message', error) if isinstance(error, dict) else error}")
    try:
        choices = chunk.get("choices") or [{}]
        return (choices[0].get("delta") or {}).get("content")
    except (AttributeError, IndexError, TypeError) as e:
        raise ValueError(f"unexpected chunk: {data[:200]}") from e


def _reason(e: Exception) -> str:
    """One line about what went wrong, for the log (no traceback: a server being down is expected)."""
    text = str(e).strip() or type(e).__name__
    if isinstance(e, httpx.TimeoutException):
        return f"timed out ({text})"
    if isinstance(e, httpx.ConnectError):
        return f"cannot connect ({text})"
    if isinstance(e, json.JSONDecodeError):
        return f"malformed reply from the server ({text})"
    return text
