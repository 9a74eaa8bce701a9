"""Push-to-talk keys: a key spec parser and global hotkey backends.

A backend watches one key combination and calls `on_press` when it goes down and
`on_release` when it comes up (auto-repeat is ignored). Backends:

    pynput  X11 (a global key hook through the XRecord extension)
    evdev   Linux input devices, any session; needs read access to /dev/input/event*
            (the user in the `input` group)
    window  the window's own key (voice.gui); only while the window has focus

On Wayland ordinary programs get no global key hooks: `choose_backend` then tries evdev and
otherwise falls back to the window's key, and its message says so. It never hands back a
backend that would silently never fire.
"""

from __future__ import annotations

import logging
import os
import select
import threading
from dataclasses import dataclass
from typing import Callable, Mapping, Protocol

log = logging.getLogger(__name__)

Callback = Callable[[], None]

MODIFIERS = {"ctrl": "ctrl", "control": "ctrl", "alt": "alt", "option": "alt", "shift": "shift",
             "super": "super", "win": "super", "cmd": "super", "meta": "super"}
# spelling accepted -> canonical key name (pynput's Key names)
ALIASES = {"escape": "esc", "return": "enter", "scrolllock": "scroll_lock", "capslock": "caps_lock",
           "numlock": "num_lock", "pgup": "page_up", "pageup": "page_up", "pgdn": "page_down",
           "pagedown": "page_down", "del": "delete", "ins": "insert", "prtsc": "print_screen",
           "printscreen": "print_screen", "print": "print_screen", "bksp": "backspace", "spacebar": "space"}
NAMED_KEYS = {"space", "tab", "enter", "esc", "backspace", "insert", "delete", "home", "end", "page_up",
              "page_down", "up", "down", "left", "right", "pause", "scroll_lock", "caps_lock", "num_lock",
              "print_screen", "menu"} | {f"f{i}" for i in range(1, 25)}
MODES = ("hold", "toggle")


class HotkeyError(ValueError):
    """A key spec cannot be parsed, or a backend cannot watch keys; the message says why."""


@dataclass(frozen=True)
class KeySpec:
    """A key with the modifiers that must be held with it, e.g. ctrl+alt+space."""

    key: str  # canonical name: "f9", "space", "scroll_lock", or one character "a", "1"
    modifiers: frozenset[str] = frozenset()  # of "ctrl", "alt", "shift", "super"

    def __str__(self) -> str:
        order = [m for m in ("ctrl", "alt", "shift", "super") if m in self.modifiers]
        return "+".join(order + [self.key.upper() if self.key.startswith("f") and len(self.key) > 1 else self.key])


def parse_key(spec: str) -> KeySpec:
    """"F9", "ctrl+alt+space", "Scroll_Lock", "ctrl+k" -> KeySpec; HotkeyError on anything else."""
    parts = [p.strip().lower() for p in spec.replace("-", "+").split("+")] if spec and spec.strip() else []
    if not parts or any(not p for p in parts):
        raise HotkeyError(f"bad push-to-talk key {spec!r}: write a key, optionally after modifiers, "
                          "e.g. F9 or ctrl+alt+space")
    *mods, key = parts
    modifiers = set()
    for m in mods:
        if m not in MODIFIERS:
            raise HotkeyError(f"bad push-to-talk key {spec!r}: {m!r} is not a modifier "
                              f"(use {', '.join(sorted(set(MODIFIERS.values())))})")
        modifiers.add(MODIFIERS[m])
    key = ALIASES.get(key, key)
    if key in MODIFIERS:
        raise HotkeyError(f"bad push-to-talk key {spec!r}: a modifier alone cannot be the key")
    if key not in NAMED_KEYS and not (len(key) == 1 and key.isprintable() and not key.isspace()):
        raise HotkeyError(f"bad push-to-talk key {spec!r}: unknown key {key!r} "
                          "(use F1..F24, a letter or digit, space, pause, scroll_lock, insert, ...)")
    return KeySpec(key, frozenset(modifiers))


class Hotkey(Protocol):
    name: str

    def start(self, on_press: Callback, on_release: Callback) -> None:
        """Begin watching; raises HotkeyError if the key cannot be watched."""
        ...

    def stop(self) -> None:
        """Stop watching; stopping twice is harmless."""
        ...


class _Combo:
    """Turns raw key downs/ups (modifiers and the main key) into one press and one release."""

    def __init__(self, spec: KeySpec, on_press: Callback, on_release: Callback) -> None:
        self.spec, self.on_press, self.on_release = spec, on_press, on_release
        self.held: set[str] = set()  # modifiers down now
        self.active = False

    def modifier(self, name: str, down: bool) -> None:
        (self.held.add if down else self.held.discard)(name)

    def main(self, down: bool) -> None:
        if down and not self.active and self.spec.modifiers <= self.held:
            self.active = True
            self.on_press()
        elif not down and self.active:
            self.active = False
            self.on_release()


def toggled(on_press: Callback, on_release: Callback) -> tuple[Callback, Callback]:
    """Toggle mode: each key press alternately starts and ends the turn; key releases do nothing."""
    talking = threading.Event()

    def press() -> None:
        if talking.is_set():
            talking.clear()
            on_release()
        else:
            talking.set()
            on_press()

    return press, lambda: None


class PynputHotkey:
    """X11 global key hook (pynput's xorg backend)."""

    name = "pynput"
    _MOD_KEYS = {"ctrl": ("ctrl", "ctrl_l", "ctrl_r"), "alt": ("alt", "alt_l", "alt_r", "alt_gr"),
                 "shift": ("shift", "shift_l", "shift_r"), "super": ("cmd", "cmd_l", "cmd_r")}

    def __init__(self, spec: KeySpec) -> None:
        try:
            from pynput import keyboard
        except Exception as e:  # no X display raises ImportError deep inside pynput
            raise HotkeyError(f"pynput cannot watch the keyboard: {e}") from e
        self.spec, self._kb = spec, keyboard
        if len(spec.key) == 1:
            self._target = keyboard.KeyCode.from_char(spec.key)
        else:
            self._target = getattr(keyboard.Key, spec.key, None)
            if self._target is None:
                raise HotkeyError(f"pynput has no key {spec.key!r}")
        self._mods = {getattr(keyboard.Key, n): m for m, names in self._MOD_KEYS.items()
                      for n in names if hasattr(keyboard.Key, n)}
        self._listener = None

    def start(self, on_press: Callback, on_release: Callback) -> None:
        combo = _Combo(self.spec, on_press, on_release)

        def handle(key, down: bool) -> None:
            if key in self._mods:
                combo.modifier(self._mods[key], down)
                return
            if isinstance(key, self._kb.KeyCode) and key.char is not None:
                key = self._kb.KeyCode.from_char(key.char.lower())  # ctrl+k arrives as a control character's KeyCode
            if key == self._target:
                combo.main(down)

        self._listener = self._kb.Listener(on_press=lambda k, *a: handle(k, True),
                                           on_release=lambda k, *a: handle(k, False))
        self._listener.start()
        self._listener.wait()
        if not self._listener.is_alive():
            raise HotkeyError("pynput's keyboard listener stopped at once (is the X server's RECORD extension off?)")
        log.info("push-to-talk: watching %s with pynput", self.spec)

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None


_EVDEV_NAMES = {"esc": "ESC", "enter": "ENTER", "print_screen": "SYSRQ", "menu": "COMPOSE", "'": "APOSTROPHE",
                ",": "COMMA", ".": "DOT", "/": "SLASH", ";": "SEMICOLON", "-": "MINUS", "=": "EQUAL",
                "[": "LEFTBRACE", "]": "RIGHTBRACE", "\\": "BACKSLASH", "`": "GRAVE"}
_EVDEV_MODS = {"ctrl": ("KEY_LEFTCTRL", "KEY_RIGHTCTRL"), "alt": ("KEY_LEFTALT", "KEY_RIGHTALT"),
               "shift": ("KEY_LEFTSHIFT", "KEY_RIGHTSHIFT"), "super": ("KEY_LEFTMETA", "KEY_RIGHTMETA")}


class EvdevHotkey:
    """Reads the keyboards under /dev/input directly: works on Wayland and on a console."""

    name = "evdev"

    def __init__(self, spec: KeySpec) -> None:
        try:
            import evdev
        except ImportError as e:
            raise HotkeyError("the evdev package is not installed (pip install evdev)") from e
        self.spec = spec
        name = _EVDEV_NAMES.get(spec.key, spec.key.replace("_", "").upper())
        self._code = getattr(evdev.ecodes, f"KEY_{name}", None)
        if self._code is None:
            raise HotkeyError(f"evdev has no key {spec.key!r}")
        self._mods = {getattr(evdev.ecodes, c): m for m, codes in _EVDEV_MODS.items() for c in codes}
        self._devices = []
        for path in evdev.list_devices():
            try:
                dev = evdev.InputDevice(path)
            except OSError:
                continue
            if self._code in dev.capabilities().get(evdev.ecodes.EV_KEY, []):
                self._devices.append(dev)
            else:
                dev.close()
        if not self._devices:
            raise HotkeyError("no keyboard under /dev/input can be read (add yourself to the 'input' group: "
                              "sudo usermod -aG input $USER, then log in again)")
        self._ev_key = evdev.ecodes.EV_KEY
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, on_press: Callback, on_release: Callback) -> None:
        combo = _Combo(self.spec, on_press, on_release)
        self._thread = threading.Thread(target=self._run, args=(combo,), name="hotkey-evdev", daemon=True)
        self._thread.start()
        log.info("push-to-talk: watching %s with evdev on %s", self.spec, ", ".join(d.path for d in self._devices))

    def _run(self, combo: _Combo) -> None:
        while not self._stop.is_set() and self._devices:
            ready, _, _ = select.select(self._devices, [], [], 0.1)
            for dev in ready:
                try:
                    events = list(dev.read())
                except OSError:  # unplugged
                    log.warning("push-to-talk: %s went away", dev.path)
                    self._devices.remove(dev)
                    continue
                for ev in events:
                    if ev.type != self._ev_key or ev.value == 2:  # 2 = auto-repeat
                        continue
                    if ev.code in self._mods:
                        combo.modifier(self._mods[ev.code], ev.value == 1)
                    elif ev.code == self._code:
                        combo.main(ev.value == 1)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
            self._thread = None
        for dev in self._devices:
            dev.close()
        self._devices = []


@dataclass(frozen=True)
class Choice:
    """The backend to use (None: the window's key, or nothing) and a sentence saying why."""

    hotkey: Hotkey | None
    backend: str  # "pynput", "evdev", "window" or "none"
    message: str


def session_kind(env: Mapping[str, str] = os.environ) -> str:
    """"wayland", "x11" or "none" (no display: a console, ssh, CI)."""
    if env.get("WAYLAND_DISPLAY") or env.get("XDG_SESSION_TYPE", "").lower() == "wayland":
        return "wayland"
    return "x11" if env.get("DISPLAY") else "none"


def choose_backend(spec: KeySpec, preferred: str = "auto", window: bool = False,
                   env: Mapping[str, str] = os.environ) -> Choice:
    """Pick how to watch `spec`: the preferred backend, or the best that works in this session."""
    if preferred not in ("auto", "pynput", "evdev", "window"):
        raise HotkeyError(f"unknown hotkey backend {preferred!r} (use auto, pynput, evdev or window)")
    if preferred == "window":
        return _window_or_none(spec, window, "the window's key was asked for")
    if preferred in ("pynput", "evdev"):
        cls = PynputHotkey if preferred == "pynput" else EvdevHotkey
        return Choice(cls(spec), preferred, f"push-to-talk: {spec} via {preferred}")
    kind = session_kind(env)
    reasons = []
    if kind == "x11":
        try:
            return Choice(PynputHotkey(spec), "pynput", f"push-to-talk: {spec} via pynput (X11, works in any window)")
        except HotkeyError as e:
            reasons.append(str(e))
    elif kind == "wayland":
        reasons.append("Wayland gives ordinary programs no global key hooks")
    else:
        reasons.append("there is no display")
    try:
        return Choice(EvdevHotkey(spec), "evdev", f"push-to-talk: {spec} via evdev ({kind}, works in any window)")
    except HotkeyError as e:
        reasons.append(f"evdev: {e}")
    return _window_or_none(spec, window, "; ".join(reasons))


def _window_or_none(spec: KeySpec, window: bool, why: str) -> Choice:
    if window:
        return Choice(None, "window", f"push-to-talk: {spec} works only while the assistant's window has focus ({why})")
    return Choice(None, "none", f"push-to-talk: {spec} is unavailable: global hotkeys cannot be watched ({why}) "
                               "and there is no window")
