"""Audio devices that come and go: PortAudio streams that reopen themselves.

A device can vanish mid-session: a USB microphone unplugged, a PulseAudio source or sink
unloaded, the sound server restarted. The stream then stops (input) or its writes fail
(output). A `DeviceStream` notices, tells the user once, and tries to open the device
again with a growing pause between attempts (`Backoff`); the configured device, which is
the system default unless one was named. When it opens, the user is told it is back.

PortAudio only sees devices that appeared after its own start once it is re-initialised
(`sd._terminate(); sd._initialize()`, see python-sounddevice issue #125), and that closes
every stream of the process. So every stream call goes through one process-wide lock
(`PORTAUDIO.lock`), and a re-initialisation first drops every registered stream; a
dropped stream reopens on its next use, without a message, since its device did not go.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
import weakref
from typing import Any, Callable

log = logging.getLogger(__name__)

Notify = Callable[[str], None]


class Backoff:
    """When to try again: `first_s`, then twice as long each failure, at most `max_s`."""

    def __init__(self, first_s: float = 0.5, max_s: float = 5.0) -> None:
        self.first_s, self.max_s = first_s, max_s
        self.reset()

    def reset(self) -> None:
        self.delay_s = self.first_s
        self.next_try = 0.0  # monotonic s; 0 = now

    def ready(self) -> bool:
        return time.monotonic() >= self.next_try

    def failed(self) -> None:
        self.next_try = time.monotonic() + self.delay_s
        self.delay_s = min(self.max_s, self.delay_s * 2)


class _PortAudio:
    """The process's PortAudio: one lock around stream calls, and re-initialisation."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._streams: weakref.WeakSet = weakref.WeakSet()
        self._alsa_handler: Any = None

    def register(self, stream: "DeviceStream") -> None:
        with self.lock:
            self._streams.add(stream)

    def unregister(self, stream: "DeviceStream") -> None:
        with self.lock:
            self._streams.discard(stream)

    def route_alsa_messages(self) -> None:
        """alsa-lib writes its notes straight to the terminal: "underrun occurred" at the first
        block of each reply, since the speaker runs dry while the assistant is quiet (harmless:
        silence ran out). They go to this module's log, at debug level, instead. Once per process;
        nothing to do where there is no alsa-lib."""
        with self.lock:
            if self._alsa_handler is not None:
                return
            try:
                asound = ctypes.CDLL("libasound.so.2")
            except OSError:
                self._alsa_handler = False
                return
            # void handler(const char *file, int line, const char *function, int err, const char *fmt, ...)
            handler_type = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                            ctypes.c_char_p)

            def to_log(file: bytes, line: int, function: bytes, err: int, fmt: bytes) -> None:
                def text(c_string: bytes | None) -> str:
                    return (c_string or b"").decode(errors="replace")

                log.debug("alsa-lib %s:%d (%s): %s", text(file), line, text(function), text(fmt))

            self._alsa_handler = handler_type(to_log)  # kept: alsa-lib calls it for the whole process
            asound.snd_lib_error_set_handler(self._alsa_handler)

    def reinitialise(self) -> None:
        """Close every stream, then restart PortAudio so that it lists the devices present now."""
        import sounddevice as sd

        with self.lock:
            for stream in list(self._streams):
                stream.drop()
            sd._terminate()
            sd._initialize()


PORTAUDIO = _PortAudio()


class DeviceStream:
    """One PortAudio stream that is reopened when its device comes back.

    `open_stream` creates and starts the stream (it may raise sd.PortAudioError, or
    ValueError / RuntimeError when no device fits); `label` names the device for the user
    ("microphone"). `notify` receives one line when the device is lost and when it is back;
    without it the line is logged as a warning.
    """

    def __init__(self, label: str, open_stream: Callable[[], Any], notify: Notify | None = None,
                 backoff: Backoff | None = None) -> None:
        self.label = label
        self._open_stream = open_stream
        self.notify = notify
        self.backoff = backoff or Backoff()
        self.stream: Any = None
        self.lost_count = 0  # times the device went away
        self._lost = False  # lost and not back yet (a dropped stream is not lost)
        PORTAUDIO.register(self)

    def open(self) -> Any:
        """The first opening: errors propagate to the caller (no device at start is fatal)."""
        PORTAUDIO.route_alsa_messages()
        with PORTAUDIO.lock:
            self.stream = self._open_stream()
            return self.stream

    def ensure(self) -> bool:
        """True if the stream is open, reopening it if it was dropped or its device is due a retry."""
        with PORTAUDIO.lock:
            if self.stream is not None:
                return True
            if self._lost and not self.backoff.ready():
                return False
            return self._reopen()

    def _reopen(self) -> bool:
        import sounddevice as sd

        try:
            if self._lost:
                PORTAUDIO.reinitialise()  # a device that came back is only listed after this
            self.stream = self._open_stream()
        except (sd.PortAudioError, ValueError, RuntimeError) as e:  # RuntimeError: no device fits
            self.stream = None
            self.backoff.failed()
            log.debug("%s: still unavailable (%s); next try in %.1f s", self.label, e, self.backoff.delay_s)
            return False
        if self._lost:
            self._lost = False
            self.backoff.reset()
            self._tell(f"{self.label} is back: {_device_name(self.stream)}")
        return True

    def lost(self, reason: str) -> None:
        """The device stopped working: close the stream and start retrying."""
        with PORTAUDIO.lock:
            self._close_stream()
            if not self._lost:
                self._lost = True
                self.lost_count += 1
                self.backoff.reset()
                self.backoff.failed()
                self._tell(f"{self.label} lost ({reason}); waiting for it to come back")

    def drop(self) -> None:
        """Close the stream because PortAudio restarts (called under the lock)."""
        self._close_stream()

    def close(self) -> None:
        with PORTAUDIO.lock:
            self._close_stream()
        PORTAUDIO.unregister(self)

    @property
    def is_lost(self) -> bool:
        return self._lost

    def _close_stream(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.abort(ignore_errors=True)
            stream.close(ignore_errors=True)

    def _tell(self, line: str) -> None:
        if self.notify is not None:
            log.info("%s", line)
            self.notify(line)
        else:
            log.warning("%s", line)


def _device_name(stream: Any) -> str:
    import sounddevice as sd

    try:
        return str(sd.query_devices(stream.device)["name"])
    except (sd.PortAudioError, ValueError, TypeError):
        return "default device"


class HasDevice:
    """For a source or sink that keeps its DeviceStream in `_device`: exposes its `notify`."""

    _device: DeviceStream

    @property
    def notify(self) -> Notify | None:
        """Called with one line when the device is lost and when it is back."""
        return self._device.notify

    @notify.setter
    def notify(self, fn: Notify | None) -> None:
        self._device.notify = fn
