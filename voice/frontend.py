"""How a person drives the running assistant: the window or the terminal, and the push-to-talk key.

The command line hands over its arguments; this module picks the window (a display is
there and PySide6 imports) or the terminal (`--no-gui`, `--input` replays, no display),
starts the push-to-talk backend, and runs until the pipeline stops. The terminal shows a
live status line on stderr when stderr is a terminal; stdout keeps its plain lines.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TextIO

from .config import Config, ConfigError
from .hotkey import MODES, Choice, HotkeyError, choose_backend, parse_key, toggled

log = logging.getLogger(__name__)


class HotkeyUnavailable(RuntimeError):
    """Push-to-talk was asked for, but no key can be watched here and there is no window
    (or --gui was asked for where no window can open)."""


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--push-to-talk", metavar="KEY", help="talk only while KEY is held, e.g. F9 or ctrl+alt+space")
    ap.add_argument("--ptt-mode", choices=MODES, help="hold: talk while the key is down (default); "
                                                      "toggle: press to start, press again to end")
    ap.add_argument("--hotkey-backend", choices=("auto", "pynput", "evdev", "window"),
                    help="how the key is watched (default auto: pynput on X11, else evdev, else the window)")
    ap.add_argument("--wake-phrase", metavar="TEXT", help="answer only what starts with TEXT, e.g. \"hey computer\"")
    gui = ap.add_mutually_exclusive_group()
    gui.add_argument("--gui", dest="gui", action="store_true", default=None,
                     help="open the window (default when there is a display and PySide6)")
    gui.add_argument("--no-gui", dest="gui", action="store_false", help="terminal only")


def check_arguments(args: argparse.Namespace) -> str | None:
    """A usage error in the push-to-talk arguments, or None."""
    if args.push_to_talk is not None:
        try:
            parse_key(args.push_to_talk)
        except HotkeyError as e:
            return f"--push-to-talk: {e}"
    if args.wake_phrase is not None and not args.wake_phrase.strip():
        return "--wake-phrase needs words, e.g. --wake-phrase \"hey computer\""
    return None


def apply_arguments(args: argparse.Namespace, config: Config) -> Config:
    """The [hotkey] section with the command line's choices over it."""
    values = {name: value for name, value in (("key", args.push_to_talk), ("mode", args.ptt_mode),
                                              ("backend", args.hotkey_backend), ("wake_phrase", args.wake_phrase))
              if value is not None}
    config = config.replace("hotkey", **values) if values else config
    if config.hotkey.key:
        try:
            parse_key(config.hotkey.key)
        except HotkeyError as e:
            raise ConfigError(f"config key 'hotkey.key': {e}") from e
    return config


def window_problem(args: argparse.Namespace) -> str | None:
    """None if the window will be used, else why the terminal is."""
    if args.gui is False:
        return "--no-gui"
    if args.input and args.gui is None:
        return "replaying a file"
    try:
        from .gui import gui_available
    except ImportError as e:
        return f"PySide6 cannot be imported ({e})"
    return gui_available()


class Frontend:
    """Window or terminal, plus the hotkey. Use: wrap_audio, attach, (console subscribes), run, close."""

    def __init__(self, args: argparse.Namespace, config: Config, err: TextIO = sys.stderr) -> None:
        self.args, self.config, self.err = args, config, err
        why = window_problem(args)
        if why is not None and args.gui:
            raise HotkeyUnavailable(f"cannot open the window: {why}")
        self.use_window = why is None
        self.window = self.status = None
        self.devices = None
        self.choice: Choice | None = None
        if config.hotkey.key:  # decided before the models load, so a dead end fails fast
            self.choice = choose_backend(parse_key(config.hotkey.key), config.hotkey.backend, window=self.use_window)
            if self.choice.backend == "none":
                raise HotkeyUnavailable(self.choice.message)

    def wrap_audio(self, source, sink):
        """With the window and live audio: devices its pickers can switch while running."""
        if not self.use_window or self.args.input or self.args.output:
            return source, sink
        from .capture import MicrophoneSource
        from .playback import SpeakerSink
        from .switchable import SwitchableSink, SwitchableSource

        a = self.config.audio
        self.devices = (SwitchableSource(source, lambda d: MicrophoneSource(d, a.frame_ms, a.sample_rate, a.queue_frames)),
                        SwitchableSink(sink, lambda d: SpeakerSink(d, sink.sample_rate)))
        return self.devices

    def attach(self, pipeline) -> None:
        """Start the hotkey and the window or status line. Call before the console printer subscribes."""
        hk = self.config.hotkey
        if self.choice is not None:
            print(f"{self.choice.message} ({hk.mode} mode)", file=self.err, flush=True)
            if self.choice.hotkey is not None:
                on_press, on_release = lambda: pipeline.push_to_talk(True), lambda: pipeline.push_to_talk(False)
                if hk.mode == "toggle":
                    on_press, on_release = toggled(on_press, on_release)
                self.choice.hotkey.start(on_press, on_release)
        if hk.wake_phrase:
            print(f"wake phrase: \"{hk.wake_phrase}\" (then {hk.follow_up_s:g} s for a follow-up without it)",
                  file=self.err, flush=True)
        if self.use_window:
            self._open_window(pipeline)
        elif self.err.isatty():
            from .status import StatusLine

            hint = f"hold {hk.key} to talk" if hk.key and hk.mode == "hold" else \
                f"press {hk.key} to talk" if hk.key else f"say \"{hk.wake_phrase}\"" if hk.wake_phrase else ""
            self.status = StatusLine(hint, self.err)
            pipeline.bus.subscribe(self.status.clear_for_output)

    def _open_window(self, pipeline) -> None:
        from .gui import AssistantWindow, make_app

        make_app()
        window_key = parse_key(self.config.hotkey.key) if self.choice and self.choice.backend == "window" else None
        note = self.choice.message if self.choice else ""
        self.window = AssistantWindow(pipeline, self.config, note, window_key,
                                      toggle=self.config.hotkey.mode == "toggle", devices=self.devices)

    def run(self, pipeline) -> None:
        """Until the window closes, or the pipeline finishes or is stopped."""
        if self.window is not None:
            from .gui import run_window

            run_window(self.window)
            return
        if self.status is not None:
            pipeline.bus.subscribe(self.status)
            self.status.draw()
        while not pipeline.wait(0.1) and not pipeline.stop_event.is_set():
            pass

    def close(self) -> None:
        if self.choice is not None and self.choice.hotkey is not None:
            self.choice.hotkey.stop()
        if self.status is not None:
            self.status.close()
