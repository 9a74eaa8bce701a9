"""Audio devices that can be changed while the assistant runs (the window's device pickers).

`SwitchableSource` and `SwitchableSink` wrap a microphone source and a speaker sink and
reopen them on another device on `switch(device)`: the new device is opened first, and
only if that works is the old one closed, so a bad pick leaves the audio as it was. The
pipeline keeps running and the conversation is kept.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Iterator

import numpy as np

from .capture import AudioInputError, AudioSource
from .frames import AudioFrame
from .playback import AudioSink

log = logging.getLogger(__name__)

Device = str | int | None


def list_devices() -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(inputs, outputs) as (index, name) from sounddevice; ([], []) when PortAudio is missing."""
    try:
        import sounddevice as sd

        devices = sd.query_devices()
    except Exception as e:  # OSError when PortAudio is missing, PortAudioError when it fails
        log.warning("cannot list audio devices: %s", e)
        return [], []
    inputs = [(i, d["name"]) for i, d in enumerate(devices) if d["max_input_channels"] > 0]
    outputs = [(i, d["name"]) for i, d in enumerate(devices) if d["max_output_channels"] > 0]
    return inputs, outputs


class _Hook:
    """A callable the pipeline sets on the device in use (`notify`, `attentive`), carried over to the next."""

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, obj, owner=None):
        return self if obj is None else obj._hooks.get(self.name)

    def __set__(self, obj, fn) -> None:
        obj._hooks[self.name] = fn
        if hasattr(obj._current, self.name):
            setattr(obj._current, self.name, fn)


class _Switchable:
    """The device in use now, and the hooks carried over to the next."""

    notify = _Hook()  # device lost / back

    def __init__(self, current: Any, reopen: Callable[[Device], Any]) -> None:
        self._current, self._reopen = current, reopen
        self._hooks = {name: getattr(current, name) for name in self._hook_names() if hasattr(current, name)}
        self._lock = threading.Lock()

    @classmethod
    def _hook_names(cls) -> list[str]:
        return [name for name in dir(cls) if isinstance(getattr(cls, name), _Hook)]

    def switch(self, device: Device) -> None:
        new = self._reopen(device)  # raises AudioInputError / AudioOutputError: the old one keeps running
        for name, fn in self._hooks.items():
            if hasattr(new, name):
                setattr(new, name, fn)
        with self._lock:
            old, self._current = self._current, new
        old.close()
        log.info("%s switched to %s", type(new).__name__, device if device is not None else "the default device")

    def close(self) -> None:
        self._current.close()


class SwitchableSource(_Switchable):
    attentive = _Hook()  # each block is needed at once (voice.capture.MicrophoneSource)

    def __init__(self, source: AudioSource, reopen: Callable[[Device], AudioSource]) -> None:
        super().__init__(source, reopen)
        self.sample_rate = source.sample_rate

    def frames(self, stop: threading.Event) -> Iterator[AudioFrame]:
        while not stop.is_set():
            source = self._current
            try:
                for frame in source.frames(stop):
                    yield frame
                    if self._current is not source:
                        break
                else:
                    if self._current is source:
                        return  # the input ended by itself
            except AudioInputError:
                if self._current is source:
                    raise  # a real fault, not the closing of a replaced device
            if self._current is not source:
                source.close()  # a source that reopens itself may have done so before it noticed


class SwitchableSink(_Switchable):
    @property
    def sample_rate(self) -> int:
        return self._current.sample_rate

    def write(self, block: np.ndarray) -> bool:
        with self._lock:
            return self._current.write(block)

    def discard(self) -> None:
        self._current.discard()
