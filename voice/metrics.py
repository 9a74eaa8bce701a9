"""Per-turn timings, collected from pipeline events, written as one JSON object per turn."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from .frames import Event

log = logging.getLogger(__name__)

# event kind -> field of the turn record (first occurrence wins)
_TIMESTAMPS = {
    "speech_end": "speech_end",
    "turn_decided": "end_of_turn",
    "transcript": "transcript_ready",
    "first_token": "first_token",
    "sentence": "first_sentence",
    "tts_audio": "first_tts_audio",
    "playback_start": "playback_start",
    "playback_end": "playback_end",
}


class TurnMetrics:
    """Subscribe to an EventBus; `turns` holds finished records, optionally appended to a JSONL file."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self.turns: list[dict] = []
        self._open: dict[int, dict] = {}
        self._retracted: set[int] = set()  # their late events are ignored
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        if event.turn_id is None or event.turn_id in self._retracted:
            return
        with self._lock:
            record = self._open.setdefault(event.turn_id, {"turn": event.turn_id})
            field = _TIMESTAMPS.get(event.kind)
            if field and field not in record:
                record[field] = event.t
            if "skill" in event.data:  # a skill answered (voice.skills), or this is a skill's announcement
                record.setdefault("skill", event.data["skill"])
            if event.kind == "announcement":
                record["announcement"] = True
            if event.kind == "turn_decided":
                record["speech_start"] = event.data.get("speech_start")
                record["audio_s"] = event.data.get("audio_s")
            elif event.kind == "transcript":
                record["transcript"] = event.text
            elif event.kind == "first_token":
                record.setdefault("backend", event.data.get("backend"))
            elif event.kind == "llm_unreachable":
                record["llm_unreachable"] = event.text
            elif event.kind == "interrupted":
                record["interrupted"] = True
                record["heard_reply"] = event.text
                record["cut"] = bool(event.data.get("cut"))
            elif event.kind == "error":
                record.setdefault("errors", []).append(event.text)
            elif event.kind == "turn_retracted":  # speculation thrown away: not a turn
                self._open.pop(event.turn_id, None)
                self._retracted.add(event.turn_id)
            elif event.kind in ("reply_done", "turn_dropped"):
                if event.kind == "reply_done":
                    record["reply"] = event.text
                    if event.data.get("interrupted"):  # also a turn cancelled by barge-in before it played
                        record["interrupted"] = True
                else:
                    record["dropped"] = event.text
                self._finish(self._open.pop(event.turn_id))

    def _finish(self, record: dict) -> None:
        if "playback_start" in record and "speech_end" in record:
            record["response_latency_s"] = round(record["playback_start"] - record["speech_end"], 4)
        self.turns.append(record)
        if self.path:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
