"""Each skill from a spoken request (Piper at test time), through the real pipeline and models."""

import re
from datetime import datetime, timedelta

import numpy as np

from conftest import normalise, wer
from talk import spoken, talk
from voice.capture import read_audio
from voice.skills import canonical


def heard(engines, wav) -> str:
    """What Whisper hears in the assistant's reply audio."""
    return engines.transcriber.transcribe(read_audio(wav).astype(np.float32) / 32768.0).text


def test_what_time_is_it(engines, config, synth_question, tmp_path):
    run = talk(spoken(synth_question, tmp_path / "q.wav", "What time is it?"), engines, config, tmp_path)
    now = datetime.now().astimezone()
    [turn] = run.turns
    assert turn["skill"] == "clock", turn
    assert turn.get("backend") is None, "the LLM was not asked"
    said = re.fullmatch(r"It's (\d{1,2}):(\d\d) (AM|PM)\.", turn["reply"])
    assert said, turn["reply"]
    hour = int(said[1]) % 12 + (12 if said[3] == "PM" else 0)
    answer = now.replace(hour=hour, minute=int(said[2]), second=0, microsecond=0)
    assert min(abs(answer - now + d) for d in (timedelta(0), timedelta(days=1), -timedelta(days=1))) \
        <= timedelta(minutes=1), (turn["reply"], now)
    assert turn["first_sentence"] <= turn["first_tts_audio"] <= turn["playback_start"], "spoken like any reply"
    assert f"assistant [clock]: {turn['reply']}" in run.lines
    # Whisper writes a spoken time as "2:17", "217", "two seventeen" or "11.30, 8.00": compare the numbers
    said_aloud = heard(engines, run.reply_wav)
    # and tiny.en hears "sixteen" as "60" now and then (seen at 7:16): "-teen" and "-ty" count as one
    assert blur_teens(spoken_numbers(said_aloud)) == blur_teens(spoken_numbers(turn["reply"])), \
        ("the reply audio says the time", said_aloud)


def blur_teens(numbers: list[int]) -> list[int]:
    """13-19 as 30-90: said aloud, "sixteen" and "sixty" differ by a syllable's ending."""
    return [(n - 10) * 10 if 13 <= n <= 19 else n for n in numbers]


HOMOPHONES = {"for": "four", "to": "two", "too": "two", "won": "one", "ate": "eight", "a": "eight"}
_HOUR_HOMOPHONE = re.compile(rf"\b(it'?s) ({'|'.join(HOMOPHONES)})\b")
# Piper's "eight eighteen", run together: tiny.en wrote "8 aching" in 4 runs of 4 (beam search and
# the whole 30 s window as well; seen at 8:18)
MISHEARD = {"aching": "eighteen"}


def spoken_numbers(text: str) -> list[int]:
    """The numbers a time is said with: "11:38", "1138" and "11.30, 8.00" are all [11, 38];
    "1:00", "100" and "1-0-0" are [1]."""
    # tiny.en writes the hour said alone as its homophone now and then: "It's for 37 p.m." (seen at
    # 4:37), "It's a 22 p.m." (8:12 and 8:21-8:29, a run in two or three)
    text = _HOUR_HOMOPHONE.sub(lambda m: f"{m[1]} {HOMOPHONES[m[2]]}", text.lower())
    text = re.sub(rf"\b({'|'.join(MISHEARD)})\b", lambda m: MISHEARD[m[1]], text)
    numbers: list[int] = []
    for token in re.findall(r"\d+", canonical(text)):
        minutes = int(token[-2:])
        if len(token) in (3, 4) and minutes < 60:  # "217", "1138": hour and minutes run together
            numbers += [int(token[:-2]), minutes] if minutes else [int(token[:-2])]
        elif int(token) == 0:  # "8.00", "1-0-0" (Piper's "1:00"): no minutes said
            continue
        elif numbers and numbers[-1] % 10 == 0 and 20 <= numbers[-1] <= 50 and 0 < int(token) < 10:
            numbers[-1] += int(token)  # "30, 8": thirty-eight
        else:
            numbers.append(int(token))
    return numbers


def test_twelve_times_twelve_says_144(engines, config, synth_question, tmp_path):
    run = talk(spoken(synth_question, tmp_path / "q.wav", "What is twelve times twelve?"), engines, config, tmp_path)
    [turn] = run.turns
    assert (turn["skill"], turn["reply"]) == ("arithmetic", "12 times 12 is 144."), turn
    assert "144" in canonical(heard(engines, run.reply_wav)).split()


def test_repeat_that_and_what_can_you_do(engines, config, synth_question, tmp_path):
    talk_wav = spoken(synth_question, tmp_path / "q.wav", "What is seventeen times twenty three?", "Repeat that.",
                      "What can you do?")
    run = talk(talk_wav, engines, config, tmp_path)
    assert [t.get("skill") for t in run.turns] == ["arithmetic", "repeat", "capabilities"], run.turns
    arithmetic, repeat, capabilities = run.turns
    assert arithmetic["reply"] == "17 times 23 is 391."
    assert repeat["reply"] == arithmetic["reply"]
    for skill in run.pipeline.skills.skills:
        if skill.name != "capabilities":
            assert skill.description in capabilities["reply"]
    # skill turns are in the history the LLM sees; "repeat that" adds nothing new to it
    history = [m["content"] for m in run.pipeline.conversation.messages("next")]
    assert history.count("17 times 23 is 391.") == 1 and capabilities["reply"] in history


def test_a_five_second_timer_announces_itself(engines, config, synth_question, tmp_path):
    # real-time replay with 9 s of silence after the request: the user is idle when it rings
    run = talk(spoken(synth_question, tmp_path / "q.wav", "Set a timer for five seconds."), engines, config,
               tmp_path, realtime=True, tail_s=9.0)
    timer = run.skill_turns["timer"]
    assert [t.get("announcement", False) for t in timer] == [False, True], run.turns
    request, announcement = timer
    assert request["reply"] == "Timer set for 5 seconds."
    assert announcement["reply"] == "Time's up! Your timer for 5 seconds is done."
    assert "playback_start" in announcement, "the announcement is spoken"
    spoken_at = run.first("speech_end", request["turn"]).t
    rang_at = run.first("announcement", announcement["turn"]).t
    assert 4.5 <= rang_at - spoken_at <= 8.0, rang_at - spoken_at
    assert "assistant [timer]: Time's up! Your timer for 5 seconds is done." in run.lines
    # both replies are in the output; tiny.en mishears some words ("Himes up"), and now and then
    # starts over at the end of the clip: only as many words as were said count. Piper's voice
    # differs at each run (its noise is random), and tiny.en often hears "timer" as "time or"
    # (in 7 of 8 runs, both times in 2 of them, which failed): that one counts as heard right
    said = re.sub(r"\btime or\b", "timer", heard(engines, run.reply_wav), flags=re.IGNORECASE)
    expected = "Timer set for 5 seconds. Time's up, your timer for 5 seconds is done."
    assert "is done" in normalise(said)
    assert wer(expected, " ".join(said.split()[:len(expected.split())])) <= 0.35, said


def test_stop_stops_the_reply_and_says_nothing(engines, config, synth_question, tmp_path):
    talk_wav = spoken(synth_question, tmp_path / "q.wav", "Tell me a long story about a brave knight and a dragon.",
                      "Stop.", gap_s=4.0)
    run = talk(talk_wav, engines, config, tmp_path, realtime=True, pace=True)
    assert "stop" in run.skill_turns, (run.turns, run.lines)
    story, stop = run.turns[0], run.skill_turns["stop"][0]
    assert story.get("interrupted"), story
    assert stop["reply"] == "" and "playback_start" not in stop, stop
    assert "assistant [stop]: (no reply)" in run.lines
    # the console shows what was heard, then the story as written, marked
    heard = story["reply"]
    assert f"(interrupted after: {heard + ('...' if story['cut'] else '')!r})" in run.lines
    told = next(l for l in run.lines if l.startswith("assistant: ") and l.endswith(" [interrupted]"))
    assert told.startswith(f"assistant: {heard}") and len(told) > len(f"assistant: {heard} [interrupted]"), told
    history = run.pipeline.conversation.messages("next")
    assert all(normalise(m["content"]) != "stop" for m in history), "stop is not a turn of the conversation"
