"""The window, rendered offscreen by Qt, driven by a real pipeline turn (Piper question -> Whisper -> LLM -> Piper)."""

from __future__ import annotations

import os
import time

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6.QtWidgets", reason="PySide6-Essentials is not installed")

from PySide6.QtCore import QEvent, Qt  # noqa: E402
from PySide6.QtGui import QKeyEvent  # noqa: E402

from conftest import wer  # noqa: E402
from voice.capture import FileSource  # noqa: E402
from voice.frames import Mute, PushToTalk  # noqa: E402
from voice.gui import AssistantWindow, make_app  # noqa: E402
from voice.hotkey import parse_key  # noqa: E402
from voice.pipeline import Pipeline  # noqa: E402
from voice.playback import WavSink  # noqa: E402
from voice.state import HEARING, LISTENING, SPEAKING, THINKING  # noqa: E402

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def app():
    return make_app()


def _pipeline(config, engines, wav, tmp_path) -> Pipeline:
    # at real-time pace, as a microphone: the level meter is throttled on the clock
    source = FileSource(wav, config.audio.frame_ms, config.audio.sample_rate, realtime=True, tail_s=1.0)
    sink = WavSink(tmp_path / "reply.wav", engines.synthesizer.sample_rate)
    return Pipeline(config, engines, source, sink, half_duplex=False)


def _pump(app, until, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    app.processEvents()


def test_window_follows_a_real_turn_and_closing_stops_the_pipeline(app, config, engines, synth_question, tmp_path):
    pipeline = _pipeline(config, engines, synth_question(QUESTION), tmp_path)
    window = AssistantWindow(pipeline, config, "push-to-talk: off")
    states, levels, kinds = [], [], []

    def record(event):
        kinds.append(event.kind)
        if not states or states[-1] != window.tracker.state:
            states.append(window.tracker.state)
        levels.append(window.level.value())

    window.bridge.received.connect(record)  # after on_event: sees the state the window shows
    window.show()
    assert window.state_label.text() == "Listening"
    pipeline.start()
    _pump(app, lambda: "reply_done" in kinds, timeout=90)

    assert "reply_done" in kinds, kinds
    assert states == [LISTENING, HEARING, THINKING, SPEAKING, LISTENING], states
    assert window.state_label.text() == "Listening"
    assert max(levels) > 20  # the meter moved with the question (> -40 dBFS)
    you = [text for who, text in window.conversation.entries if who == "you"]
    said = [text for who, text in window.conversation.entries if who == "assistant"]
    assert len(you) == 1 and wer(QUESTION, you[0]) <= 0.25, window.conversation.entries
    assert len(said) == 1 and said[0].strip(), window.conversation.entries
    html = window.conversation.toHtml()
    assert "You:" in html and "Assistant:" in html

    window.close()
    assert pipeline.stop_event.is_set()
    assert not any(stage.is_alive() for stage in pipeline.stages)


def test_button_mute_and_window_key_reach_the_vad_ahead_of_audio(app, config, engines, synth_question, tmp_path):
    ptt = config.replace("hotkey", key="F9")
    pipeline = _pipeline(ptt, engines, synth_question(QUESTION), tmp_path)  # not started: the queue is read here
    window = AssistantWindow(pipeline, ptt, "push-to-talk: F9 works only while the window has focus",
                             window_key=parse_key("F9"))
    window.show()
    window.talk.pressed.emit()
    window.talk.released.emit()
    window.mute.setChecked(True)
    for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
        app.sendEvent(window.windowHandle(), QKeyEvent(kind, Qt.Key.Key_F9, Qt.KeyboardModifier.NoModifier))
    app.sendEvent(window.windowHandle(), QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_F8, Qt.KeyboardModifier.NoModifier))
    frames = []
    while not pipeline.control.empty():
        frames.append(pipeline.control.get_nowait())
    assert [type(f) for f in frames] == [PushToTalk, PushToTalk, Mute, PushToTalk, PushToTalk]
    assert [f.pressed if isinstance(f, PushToTalk) else f.muted for f in frames] == [True, False, True, True, False]
    assert "F9" in window.talk.text()
    assert window.state_label.text() == "Listening · Hold F9 to talk"
    pipeline.stop_event.set()  # Ctrl-C in the terminal: the window closes itself
    _pump(app, lambda: not window.isVisible(), timeout=5)
    assert not window.isVisible()


def test_conversation_takes_back_a_retracted_turn_and_marks_an_interrupted_reply(app):
    from voice.gui import ConversationView

    view = ConversationView()
    view.add("you", "What is the", 1)  # speculative: transcribed at a short pause
    view.reply_part(1, "The")
    view.retract(1)  # the user went on speaking
    view.add("you", "What is the capital of France?", 2)
    view.reply_part(2, "The capital of France is Paris.")
    view.reply_part(2, "It is on the Seine.")
    view.reply_done(2, "The capital of France is Paris.", " [interrupted]")
    assert view.entries == [["you", "What is the capital of France?"],
                            ["assistant", "The capital of France is Paris. [interrupted]"]]
