"""The push-to-talk key spec parser, the combination logic, toggle mode and the backend choice."""

from __future__ import annotations

import pytest

from voice.hotkey import HotkeyError, KeySpec, _Combo, choose_backend, parse_key, session_kind, toggled


@pytest.mark.parametrize("spec, key, mods", [
    ("F9", "f9", set()),
    ("f12", "f12", set()),
    ("ctrl+alt+space", "space", {"ctrl", "alt"}),
    ("Ctrl + Shift + K", "k", {"ctrl", "shift"}),
    ("control-option-Return", "enter", {"ctrl", "alt"}),
    ("Scroll_Lock", "scroll_lock", set()),
    ("scrolllock", "scroll_lock", set()),
    ("super+1", "1", {"super"}),
    ("Pause", "pause", set()),
])
def test_parse_key(spec, key, mods):
    assert parse_key(spec) == KeySpec(key, frozenset(mods))


@pytest.mark.parametrize("spec, says", [
    ("", "write a key"),
    ("ctrl+", "write a key"),
    ("hyper+f9", "'hyper' is not a modifier"),
    ("ctrl+alt", "a modifier alone"),
    ("F99", "unknown key 'f99'"),
    ("banana", "unknown key 'banana'"),
])
def test_bad_key_specs_say_why(spec, says):
    with pytest.raises(HotkeyError, match=says):
        parse_key(spec)


def test_key_spec_prints_back():
    assert str(parse_key("alt+ctrl+f9")) == "ctrl+alt+F9"
    assert str(parse_key("space")) == "space"


def test_combo_needs_the_modifiers_and_ignores_repeats():
    events = []
    combo = _Combo(parse_key("ctrl+space"), lambda: events.append("press"), lambda: events.append("release"))
    combo.main(True)  # space without ctrl
    combo.main(False)
    combo.modifier("ctrl", True)
    combo.main(True)
    combo.main(True)  # auto-repeat
    combo.modifier("ctrl", False)  # letting go of ctrl first still ends the turn on the key's release
    combo.main(False)
    assert events == ["press", "release"]


def test_toggle_mode_alternates_on_presses():
    events = []
    press, release = toggled(lambda: events.append("start"), lambda: events.append("end"))
    for _ in range(3):
        press()
        release()
    assert events == ["start", "end", "start"]


@pytest.mark.parametrize("env, kind", [
    ({"DISPLAY": ":0"}, "x11"),
    ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, "wayland"),
    ({"XDG_SESSION_TYPE": "wayland"}, "wayland"),
    ({}, "none"),
])
def test_session_kind(env, kind):
    assert session_kind(env) == kind


def test_wayland_falls_back_and_says_why(monkeypatch):
    # this machine has no readable keyboard under /dev/input, so evdev is out too
    monkeypatch.setattr("voice.hotkey.EvdevHotkey.__init__", _no_evdev)
    spec = parse_key("F9")
    choice = choose_backend(spec, env={"WAYLAND_DISPLAY": "wayland-0"}, window=True)
    assert choice.backend == "window" and choice.hotkey is None
    assert "Wayland gives ordinary programs no global key hooks" in choice.message
    assert "input' group" in choice.message and "focus" in choice.message
    none = choose_backend(spec, env={}, window=False)
    assert none.backend == "none" and "unavailable" in none.message and "no display" in none.message


def _no_evdev(self, spec):
    raise HotkeyError("no keyboard under /dev/input can be read (add yourself to the 'input' group: ...)")


def test_unknown_backend_is_an_error():
    with pytest.raises(HotkeyError, match="unknown hotkey backend"):
        choose_backend(parse_key("F9"), "xinput")


class _FakeKeyboard:
    """Stands in for /dev/input/eventN, which this machine lacks: a pipe to wake select(), and events."""

    def __init__(self, path: str) -> None:
        import os

        self.path = path
        self._r, self._w = os.pipe()
        self._events: list = []

    def capabilities(self):
        from evdev import ecodes

        return {ecodes.EV_KEY: [ecodes.KEY_F9, ecodes.KEY_LEFTCTRL, ecodes.KEY_A]}

    def fileno(self) -> int:
        return self._r

    def send(self, *events) -> None:
        import os

        self._events.extend(events)
        os.write(self._w, b"x")

    def read(self):
        import os

        os.read(self._r, 1024)
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        pass


def test_evdev_backend_reads_key_events(monkeypatch):
    import time
    from types import SimpleNamespace

    evdev = pytest.importorskip("evdev")
    from evdev import ecodes

    keyboard = _FakeKeyboard("/dev/input/event3")
    monkeypatch.setattr(evdev, "list_devices", lambda: [keyboard.path])
    monkeypatch.setattr(evdev, "InputDevice", lambda path: keyboard)
    from voice.hotkey import EvdevHotkey

    def key(code, value):
        return SimpleNamespace(type=ecodes.EV_KEY, code=code, value=value)

    events = []
    hotkey = EvdevHotkey(parse_key("ctrl+F9"))
    hotkey.start(lambda: events.append("press"), lambda: events.append("release"))
    keyboard.send(key(ecodes.KEY_F9, 1), key(ecodes.KEY_F9, 0))  # without ctrl: nothing
    keyboard.send(key(ecodes.KEY_LEFTCTRL, 1), key(ecodes.KEY_F9, 1), key(ecodes.KEY_F9, 2), key(ecodes.KEY_F9, 2))
    keyboard.send(key(ecodes.KEY_F9, 0), key(ecodes.KEY_LEFTCTRL, 0))
    deadline = time.monotonic() + 5
    while len(events) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    hotkey.stop()
    assert events == ["press", "release"]


def test_evdev_without_readable_keyboards_says_to_join_the_input_group(monkeypatch):
    evdev = pytest.importorskip("evdev")
    monkeypatch.setattr(evdev, "list_devices", lambda: [])
    from voice.hotkey import EvdevHotkey

    with pytest.raises(HotkeyError, match="'input' group"):
        EvdevHotkey(parse_key("F9"))
