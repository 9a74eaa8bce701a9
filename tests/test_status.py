"""The state derived from pipeline events, and the terminal's live status line."""

from __future__ import annotations

import io

from voice.frames import Event
from voice.state import HEARING, LISTENING, MUTED, SPEAKING, THINKING, StateTracker
from voice.status import StatusLine, meter


def test_states_follow_a_turn_and_mute():
    tracker = StateTracker()
    seen = []
    for kind, data in [("level", {}), ("speech_start", {}), ("turn_decided", {}), ("transcript", {}),
                       ("playback_start", {}), ("turn_dropped", {}), ("reply_done", {}), ("muted", {"muted": True}),
                       ("muted", {"muted": False})]:
        tracker.update(Event(kind, 1, data=data))
        seen.append(tracker.state)
    assert seen == [LISTENING, HEARING, THINKING, THINKING, SPEAKING, SPEAKING, LISTENING, MUTED, LISTENING]


def test_status_line_redraws_in_place_and_clears_before_stdout_lines():
    out = io.StringIO()
    status = StatusLine("hold F9 to talk", out)
    status(Event("level", data={"dbfs": -30.0}))
    status(Event("speech_start"))
    assert out.getvalue().endswith("\r\x1b[2K● hearing you │ mic " + meter(-30.0) + " │ hold F9 to talk")
    assert "\n" not in out.getvalue()
    status.clear_for_output(Event("transcript", 1, text="hello"))
    assert out.getvalue().endswith("\r\x1b[2K")
    status.clear_for_output(Event("level"))  # only lines that print are cleared for
    assert out.getvalue().endswith("\r\x1b[2K")


def test_meter():
    assert meter(-90.0) == " " * 8
    assert meter(0.0) == "█" * 8
    assert meter(-30.0).startswith("████") and len(meter(-30.0)) == 8
