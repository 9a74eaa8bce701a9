"""Configuration: nested frozen dataclasses read from TOML.

`config/default.toml` is the single place that holds every default (the dataclasses only
declare names and types); a user's file is merged over it. Unknown keys and wrong types
are errors that name the key.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit

DEFAULT_TOML = Path(__file__).resolve().parent.parent / "config" / "default.toml"


class ConfigError(ValueError):
    """A configuration file or value is unusable; the message names the file and key."""


@dataclass(frozen=True)
class AudioConfig:
    sample_rate: int
    frame_ms: int
    input_device: str
    output_device: str
    queue_frames: int


@dataclass(frozen=True)
class VadConfig:
    aggressiveness: int
    min_level_dbfs: float
    start_ms: int
    start_window_ms: int
    min_speech_ms: int
    end_silence_ms: int
    speculate_ms: int
    early_end_ms: int
    barge_in_ms: int
    hold_ms: int
    resume_ms: int
    pre_roll_ms: int
    max_turn_s: float


@dataclass(frozen=True)
class SttConfig:
    model: str
    compute_type: str
    threads: int
    language: str
    beam_size: int
    short_encode: bool
    no_speech_threshold: float
    logprob_threshold: float


@dataclass(frozen=True)
class LlmConfig:
    model: str
    context_tokens: int
    threads: int
    batch_threads: int
    max_tokens: int
    first_clause_words: int
    max_piece_words: int
    temperature: float
    seed: int
    system_prompt: str
    backend: str  # "local" (the in-process GGUF) or "openai" (an OpenAI-compatible server)
    base_url: str
    api_model: str
    api_key_env: str
    timeout_s: float
    fallback_to_local: bool


@dataclass(frozen=True)
class TtsConfig:
    voice: str
    length_scale: float
    volume: float


@dataclass(frozen=True)
class EchoConfig:
    enabled: bool
    delay_ms: int
    noise_suppression: bool


@dataclass(frozen=True)
class OutputConfig:
    block_ms: int


@dataclass(frozen=True)
class HotkeyConfig:
    key: str  # push-to-talk key, e.g. "F9" or "ctrl+alt+space"; "" = voice opens turns by itself
    mode: str  # "hold" or "toggle"
    backend: str  # "auto", "pynput", "evdev" or "window"
    wake_phrase: str  # "" = none; else only transcripts with it are answered
    follow_up_s: float  # after the wake phrase alone, the next turn within this needs none


@dataclass(frozen=True)
class SkillsConfig:
    enabled: bool  # time, timers, arithmetic, stop, repeat, help: answered locally before the LLM


@dataclass(frozen=True)
class MemoryConfig:
    enabled: bool  # keep the conversation across restarts
    path: str  # SQLite file; "" = memory.sqlite3 in the user's data directory


@dataclass(frozen=True)
class Config:
    audio: AudioConfig
    vad: VadConfig
    stt: SttConfig
    llm: LlmConfig
    tts: TtsConfig
    output: OutputConfig
    echo: EchoConfig
    hotkey: HotkeyConfig
    skills: SkillsConfig
    memory: MemoryConfig

    def replace(self, section: str, **values: Any) -> "Config":
        """A copy with some keys of one section changed (used for command-line overrides)."""
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **values)})


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as e:
        raise ConfigError(f"config file not found: {path}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from e
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e


def _merge(base: dict, over: dict, where: str) -> dict:
    out = dict(base)
    for key, value in over.items():
        name = f"{where}.{key}" if where else key
        if key not in base:
            raise ConfigError(f"unknown config key '{name}'")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{name}' must be a table")
            out[key] = _merge(base[key], value, name)
        else:
            out[key] = value
    return out


def _coerce(cls: type, table: dict, where: str) -> Any:
    hints = get_type_hints(cls)
    values = {}
    for f in fields(cls):
        if f.name not in table:
            continue
        value, want, name = table[f.name], hints[f.name], f"{where}.{f.name}" if where else f.name
        if dataclasses.is_dataclass(want):
            values[f.name] = _coerce(want, value, name)
        elif want is float and isinstance(value, int) and not isinstance(value, bool):
            values[f.name] = float(value)
        elif want is str and isinstance(value, int) and not isinstance(value, bool) and f.name.endswith("device"):
            values[f.name] = str(value)  # a device index written as a number
        elif not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ConfigError(f"config key '{name}' must be {want.__name__}, got {type(value).__name__} {value!r}")
        else:
            values[f.name] = value
    return cls(**values)


def load_config(user_file: str | Path | None = None) -> Config:
    """The defaults, with `user_file` (if any) merged over them."""
    table = _read_toml(DEFAULT_TOML)
    if user_file is not None:
        table = _merge(table, _read_toml(Path(user_file)), "")
    config = _coerce(Config, table, "")
    _validate(config)
    return config


def _validate(c: Config) -> None:
    if c.audio.frame_ms not in (10, 20, 30):
        raise ConfigError(f"config key 'audio.frame_ms' must be 10, 20 or 30, got {c.audio.frame_ms}")
    if c.audio.sample_rate != 16000:
        raise ConfigError("config key 'audio.sample_rate' must be 16000 (webrtcvad and Whisper work at 16 kHz)")
    if not 0 <= c.vad.aggressiveness <= 3:
        raise ConfigError(f"config key 'vad.aggressiveness' must be 0..3, got {c.vad.aggressiveness}")
    for name, value in (("vad.end_silence_ms", c.vad.end_silence_ms), ("vad.start_ms", c.vad.start_ms),
                        ("vad.start_window_ms", c.vad.start_window_ms), ("audio.queue_frames", c.audio.queue_frames),
                        ("llm.context_tokens", c.llm.context_tokens), ("llm.max_tokens", c.llm.max_tokens),
                        ("llm.threads", c.llm.threads), ("llm.batch_threads", c.llm.batch_threads),
                        ("llm.max_piece_words", c.llm.max_piece_words)):
        if value <= 0:
            raise ConfigError(f"config key '{name}' must be positive, got {value}")
    if c.llm.backend not in ("local", "openai"):
        raise ConfigError(f"config key 'llm.backend' must be \"local\" or \"openai\", got {c.llm.backend!r}")
    if c.llm.backend == "openai" and (problem := url_problem(c.llm.base_url)):
        raise ConfigError(f"config key 'llm.base_url' {problem}")
    _validate_hotkey(c.hotkey)
    if c.llm.timeout_s <= 0:
        raise ConfigError(f"config key 'llm.timeout_s' must be positive, got {c.llm.timeout_s}")


def _validate_hotkey(c: HotkeyConfig) -> None:
    if c.mode not in ("hold", "toggle"):
        raise ConfigError(f"config key 'hotkey.mode' must be \"hold\" or \"toggle\", got {c.mode!r}")
    if c.backend not in ("auto", "pynput", "evdev", "window"):
        raise ConfigError(f"config key 'hotkey.backend' must be auto, pynput, evdev or window, got {c.backend!r}")
    if c.follow_up_s < 0:
        raise ConfigError(f"config key 'hotkey.follow_up_s' must not be negative, got {c.follow_up_s}")


def url_problem(url: str) -> str | None:
    """Why `url` cannot be an OpenAI-compatible API base, or None if it can."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http(s) URL such as http://127.0.0.1:8080/v1, got {url!r}"
    return None

