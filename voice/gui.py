"""The desktop window (PySide6): what the assistant is doing, the conversation, the microphone.

The window only listens to the pipeline's events; the pipeline does not import it. The
EventBus calls subscribers on stage threads, so events cross to the Qt thread through a
Qt signal (a queued connection). Closing the window stops the pipeline; a pipeline that
stops by itself (Ctrl-C, a fault) closes the window.
"""

from __future__ import annotations

import html
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QApplication, QCheckBox, QComboBox, QGridLayout, QLabel, QProgressBar,
                               QPushButton, QTextBrowser, QVBoxLayout, QWidget)

from .config import Config
from .console import heard_as_shown
from .frames import Event
from .hotkey import KeySpec
from .level import FLOOR_DBFS
from .state import HEARING, LISTENING, MUTED, SPEAKING, THINKING, StateTracker

log = logging.getLogger(__name__)

STATE_COLOURS = {LISTENING: "#2e7d32", HEARING: "#1565c0", THINKING: "#ef6c00", SPEAKING: "#6a1b9a",
                 MUTED: "#616161"}
BUNDLED_NAMES = {"stt": "Whisper tiny.en", "llm": "SmolLM2-135M-Instruct", "tts": "Piper en_US-joe-medium"}


class Assistant(Protocol):
    """What the window drives: a running Pipeline."""

    bus: object
    stop_event: object

    def push_to_talk(self, pressed: bool) -> None: ...

    def set_muted(self, muted: bool) -> None: ...

    def stop(self, timeout: float = 2.0) -> list[str]: ...


def model_names(config: Config) -> str:
    def name(section: str, value: str) -> str:
        return BUNDLED_NAMES[section] if value == "bundled" else Path(value).name

    llm = name("llm", config.llm.model)
    if getattr(config.llm, "backend", "local") == "openai":
        llm = f"{config.llm.api_model or 'server model'} at {config.llm.base_url}"
    return f"{name('stt', config.stt.model)} · {llm} · {name('tts', config.tts.voice)}"


class EventBridge(QObject):
    """An EventBus subscriber that re-emits each event as a Qt signal (safe from any thread)."""

    received = Signal(object)

    def __call__(self, event: Event) -> None:
        self.received.emit(event)


class ConversationView(QTextBrowser):
    """The user's words and the replies, the latter growing sentence by sentence.

    A speculative turn (transcribed at a short pause) that the user talked on from is
    retracted: its lines are taken out again."""

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[list[str]] = []  # [who, text]; who is "you", "assistant" or "note"
        self._of_turn: dict[tuple[str, int], list[str]] = {}  # (who, turn id) -> its entry

    def add(self, who: str, text: str, turn_id: int | None = None) -> None:
        entry = self._of_turn.get((who, turn_id)) if turn_id is not None else None
        if entry is None:
            entry = [who, text]
            self.entries.append(entry)
            if turn_id is not None:
                self._of_turn[(who, turn_id)] = entry
        entry[1] = text
        self._render()

    def reply_part(self, turn_id: int, text: str) -> None:
        entry = self._of_turn.get(("assistant", turn_id))
        self.add("assistant", f"{entry[1] if entry else ''} {text}".strip(), turn_id)

    def reply_done(self, turn_id: int, text: str, suffix: str = "") -> None:
        entry = self._of_turn.get(("assistant", turn_id))
        if entry is None and not text:
            return
        self.add("assistant", (text or (entry[1] if entry else "")) + suffix, turn_id)

    def retract(self, turn_id: int) -> None:
        gone = [self._of_turn.pop((who, turn_id), None) for who in ("you", "assistant")]
        self.entries = [e for e in self.entries if not any(e is g for g in gone)]
        self._render()

    def _render(self) -> None:
        rows = []
        for who, text in self.entries:
            colour = {"you": "#1565c0", "assistant": "#6a1b9a"}.get(who, "#757575")
            label = {"you": "You", "assistant": "Assistant"}.get(who, "")
            head = f"<b style='color:{colour}'>{label}:</b> " if label else ""
            rows.append(f"<p style='margin:4px 0'>{head}{html.escape(text)}</p>")
        self.setHtml("".join(rows))
        self.verticalScrollBar().setValue(self.verticalScrollBar().maximum())


class AssistantWindow(QWidget):
    def __init__(self, assistant: Assistant, config: Config, hotkey_note: str = "", window_key: KeySpec | None = None,
                 toggle: bool = False, devices=None) -> None:
        super().__init__()
        self.assistant, self.window_key, self.toggle, self.devices = assistant, window_key, toggle, devices
        # in push-to-talk mode voice alone opens no turn: say what does
        key = config.hotkey.key
        self.idle_text = (f"{'Press' if toggle else 'Hold'} {key} to talk" if key else
                          f"Say \"{config.hotkey.wake_phrase}\"" if config.hotkey.wake_phrase else "")
        self.tracker = StateTracker()
        self.setWindowTitle("Voice assistant")
        self.resize(520, 560)
        self.state_label = QLabel()
        self.state_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.conversation = ConversationView()
        self.level = QProgressBar()
        self.level.setRange(0, 60)
        self.level.setTextVisible(False)
        self.level.setFixedHeight(10)
        self.talk = QPushButton("Push to talk" + (f" ({window_key or config.hotkey.key})" if config.hotkey.key else ""))
        self.talk.setCheckable(toggle)
        self.mute = QCheckBox("Mute microphone")
        self.inputs, self.outputs = QComboBox(), QComboBox()
        self.hotkey_label = QLabel(hotkey_note or "Voice opens a turn; hold the button to talk now.")
        self.hotkey_label.setWordWrap(True)
        self.models_label = QLabel(f"Models: {model_names(config)}")
        self.models_label.setWordWrap(True)
        self._layout()
        self._fill_devices(config)
        self._connect()
        self._show_state()

    def _layout(self) -> None:
        grid = QGridLayout()
        grid.addWidget(QLabel("Microphone"), 0, 0)
        grid.addWidget(self.inputs, 0, 1)
        grid.addWidget(QLabel("Speaker"), 1, 0)
        grid.addWidget(self.outputs, 1, 1)
        box = QVBoxLayout(self)
        box.addWidget(self.state_label)
        box.addWidget(self.conversation, 1)
        meter = QGridLayout()
        meter.addWidget(QLabel("Mic level"), 0, 0)
        meter.addWidget(self.level, 0, 1)
        box.addLayout(meter)
        box.addWidget(self.talk)
        box.addWidget(self.mute)
        box.addLayout(grid)
        for label in (self.hotkey_label, self.models_label):
            label.setStyleSheet("color:#616161")
            box.addWidget(label)

    def _fill_devices(self, config: Config) -> None:
        from .switchable import list_devices

        inputs, outputs = list_devices()
        for combo, devices, current in ((self.inputs, inputs, config.audio.input_device),
                                        (self.outputs, outputs, config.audio.output_device)):
            combo.addItem("System default", None)
            for index, name in devices:
                combo.addItem(f"{index}: {name}", index)
                if current and current in (str(index), name):
                    combo.setCurrentIndex(combo.count() - 1)
            if self.devices is None:
                combo.setEnabled(False)
                combo.setToolTip("Replaying a file: the devices are chosen with --input-device/--output-device")
            else:
                combo.setToolTip("Changing it reopens the device at once; the conversation goes on")

    def _connect(self) -> None:
        self.bridge = EventBridge()
        self.bridge.received.connect(self.on_event, Qt.ConnectionType.QueuedConnection)
        self.assistant.bus.subscribe(self.bridge)
        if self.toggle:
            self.talk.toggled.connect(self.assistant.push_to_talk)
        else:
            self.talk.pressed.connect(lambda: self.assistant.push_to_talk(True))
            self.talk.released.connect(lambda: self.assistant.push_to_talk(False))
        self.mute.toggled.connect(self.assistant.set_muted)
        self.inputs.activated.connect(lambda i: self._switch(0, self.inputs.itemData(i)))
        self.outputs.activated.connect(lambda i: self._switch(1, self.outputs.itemData(i)))
        if self.window_key is not None:
            QApplication.instance().installEventFilter(self)
        QShortcut(QKeySequence("Ctrl+Q"), self, activated=self.close)
        self.watch = QTimer(self)  # also lets Python run its Ctrl-C handler during the Qt loop
        self.watch.timeout.connect(self._check_stopped)
        self.watch.start(100)

    def _switch(self, which: int, device) -> None:
        try:
            self.devices[which].switch(device)
        except Exception as e:  # AudioInputError, AudioOutputError, PortAudioError
            log.error("cannot switch the audio device: %s", e)
            self.conversation.add("note", f"Cannot use that device: {e}")

    def on_event(self, event: Event) -> None:
        if self.tracker.update(event):
            self._show_state()
        kind = event.kind
        if kind == "level":
            self.level.setValue(int(max(0.0, event.data.get("dbfs", FLOOR_DBFS) + 60.0)))
        elif kind == "transcript":
            self.conversation.add("you", event.text, event.turn_id)
        elif kind == "turn_retracted" and event.turn_id is not None:
            self.conversation.retract(event.turn_id)
        elif kind == "device":
            self.conversation.add("note", event.text)
        elif kind == "sentence" and event.turn_id is not None:
            self.conversation.reply_part(event.turn_id, event.text)
        elif kind == "reply_done" and event.turn_id is not None:  # an interrupted one holds what was heard
            self.conversation.reply_done(event.turn_id, heard_as_shown(event),
                                         " [interrupted]" if event.data.get("interrupted") else "")
        elif kind == "error":
            self.conversation.add("note", f"Error: {event.text}")
        elif kind == "turn_dropped" and event.data.get("wake") == "wake":
            self.conversation.add("note", event.text)

    def _show_state(self) -> None:
        state = self.tracker.state
        text = state.capitalize()
        if state == LISTENING and self.idle_text:
            text = f"{text} · {self.idle_text}"
        self.state_label.setText(text)
        self.state_label.setStyleSheet(f"font-size:20px; font-weight:bold; color:white; padding:8px; "
                                       f"border-radius:6px; background:{STATE_COLOURS[state]}")

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """The window's own push-to-talk key (the fallback where global hotkeys are unavailable)."""
        if event.type() in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease) and not event.isAutoRepeat() \
                and watched is self.windowHandle() and key_matches(self.window_key, event):
            pressed = event.type() == QEvent.Type.KeyPress
            if self.toggle:
                if pressed:
                    self.talk.toggle()
            else:
                self.assistant.push_to_talk(pressed)
                self.talk.setDown(pressed)
            return True
        return False

    def _check_stopped(self) -> None:
        if self.assistant.stop_event.is_set():
            self.close()

    def closeEvent(self, event) -> None:
        self.watch.stop()
        stuck = self.assistant.stop()
        if stuck:
            log.error("closing the window: stages still running: %s", ", ".join(stuck))
        event.accept()


def key_matches(spec: KeySpec, event) -> bool:
    """Does a Qt key event carry `spec` (with exactly its modifiers held)?"""
    name = {"esc": "Escape", "enter": "Return", "page_up": "PageUp", "page_down": "PageDown",
            "scroll_lock": "ScrollLock", "caps_lock": "CapsLock", "num_lock": "NumLock",
            "print_screen": "Print"}.get(spec.key, spec.key.capitalize() if len(spec.key) > 1 else spec.key.upper())
    want = getattr(Qt.Key, f"Key_{name}", None)
    if want is None or event.key() != want:
        return False
    mods = event.modifiers()
    held = {m for m, flag in (("ctrl", Qt.KeyboardModifier.ControlModifier), ("alt", Qt.KeyboardModifier.AltModifier),
                              ("shift", Qt.KeyboardModifier.ShiftModifier), ("super", Qt.KeyboardModifier.MetaModifier))
            if mods & flag}
    return event.type() == QEvent.Type.KeyRelease or held == spec.modifiers


def run_window(window: AssistantWindow) -> None:
    """Show the window and run Qt's loop until it closes (which stops the pipeline)."""
    window.show()
    QApplication.instance().exec()


def make_app() -> QApplication:
    return QApplication.instance() or QApplication(["voice-assistant"])


def gui_available() -> str | None:
    """None if a window can be shown here, else why not.

    Qt aborts the whole process when its platform plugin cannot load (on X11 usually a
    missing libxcb-* library), so a real display is tried in a child process first."""
    if os.environ.get("QT_QPA_PLATFORM", "") in ("offscreen", "minimal", "vnc"):
        return None
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "there is no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    probe = "import sys; from PySide6.QtGui import QGuiApplication; QGuiApplication(sys.argv[:1])"
    try:
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"Qt could not be tried: {e}"
    if done.returncode != 0:
        first = next((line for line in done.stderr.splitlines() if line.strip()), "no message")
        return (f"Qt cannot open the display ({first}); on Debian/Ubuntu: sudo apt-get install libxcb-cursor0 "
                "libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0")
    return None
