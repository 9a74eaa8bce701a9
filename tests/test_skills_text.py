"""Skills on text: the matcher's robustness to Whisper's spellings, the arithmetic parser, timers."""

import threading
from datetime import datetime, timezone

import pytest

from voice.frames import Event
from voice.skills import SkillRouter, canonical
from voice.skills.arithmetic import NotArithmetic, evaluate, tokens
from voice.skills.timer import describe, parse_duration


@pytest.fixture
def router():
    r = SkillRouter()
    yield r
    r.close()


@pytest.mark.parametrize("heard, want", [
    ("Um, could you tell me what time it is, please?", "what time it is"),
    ("Hey, set a timer for five minutes.", "set a timer for 5 min"),
    ("What's twelve times twelve?", "what is 12 times 12"),
    ("What is seventeen times twenty-three?", "what is 17 times 23"),
    ("Okay, so, uh, what is two point five plus one?", "what is 2.5 plus 1"),
    ("Set a 5-second timer.", "set a 5 sec timer"),
    ("What is 1,000 divided by 8?", "what is 1000 divided by 8"),
    ("What can you do?", "what can you do"),  # "can you" is only dropped as an opening
    ("Can you repeat that?", "repeat that"),
    ("Repeat that. Repeat that. Repeat that. Repeat", "repeat that"),  # Whisper looping on a short clip
])
def test_canonical_text(heard, want):
    assert canonical(heard) == want


@pytest.mark.parametrize("spoken, seconds", [
    ("5 min", 300), ("5 sec", 5), ("1 and a half min", 90), ("a min and a half", 90), ("half an hour", 1800),
    ("1 hour and 20 min", 4800), ("90 sec", 90), ("2.5 min", 150), ("1 1/2 min", 90), ("a couple of min", 120),
    ("the movie", None), ("5 min from the end", None), ("", None),
])
def test_durations(spoken, seconds):
    assert parse_duration(spoken) == seconds


def test_describe_durations():
    assert [describe(s) for s in (1, 5, 90, 3600, 3725)] == [
        "1 second", "5 seconds", "1 minute and 30 seconds", "1 hour", "1 hour, 2 minutes and 5 seconds"]


@pytest.mark.parametrize("heard, reply", [
    ("What is 17 times 23?", "17 times 23 is 391."),
    ("What is twelve times twelve?", "12 times 12 is 144."),
    ("What is 17 x 23?", "17 times 23 is 391."),
    ("What a 17 times 2?", "17 times 2 is 34."),  # Whisper tiny mishearing "what is"
    ("What's 4 + 4?", "4 plus 4 is 8."),
    ("How much is one hundred and five divided by three?", "105 divided by 3 is 35."),
    ("What is 10 divided by 3?", "10 divided by 3 is about 3.3333."),
    ("What is 0.1 plus 0.2?", "0.1 plus 0.2 is 0.3."),  # exact, not 0.30000000000000004
    ("What is three minus ten?", "3 minus 10 is minus 7."),
    ("What is negative five plus three?", "Minus 5 plus 3 is minus 2."),
    ("Five squared.", "5 squared is 25."),
    ("What is two to the power of ten?", "2 to the power of 10 is 1024."),
    ("What is the square root of 144?", "The square root of 144 is 12."),
    ("What is 20 percent of 50?", "20 percent of 50 is 10."),
    ("What is 10 divided by 0?", "You can't divide by zero."),
    ("What is 2 to the power of 100000?", "That number is too big for me to say."),
])
def test_arithmetic(router, heard, reply):
    answer = router.route(heard)
    assert answer is not None and answer.skill == "arithmetic"
    assert answer.text == reply


@pytest.mark.parametrize("source", [
    "__import__('os').system('true')", "(1).__class__", "open('x')", "sqrt.__globals__", "[1, 2]", "x", "1 if 1 else 2",
    "lambda: 1", "2 ** -1 ** 'a'",
])
def test_the_parser_refuses_anything_but_arithmetic(source):
    with pytest.raises(NotArithmetic):
        evaluate(source)


def test_spoken_code_is_not_computed(router, tmp_path):
    marker = tmp_path / "ran"
    for heard in (f"what is __import__('os').system('touch {marker}')", "what is eval('1 plus 1')",
                  "what is 1 plus __import__('os')"):
        answer = router.route(heard)
        assert answer is None or answer.skill != "arithmetic", heard
        with pytest.raises(NotArithmetic):
            tokens(canonical(heard).removeprefix("what is "))
    assert not marker.exists()


@pytest.mark.parametrize("heard", [
    "What is the capital of France?", "My name is Alice.", "What is my name?", "Tell me a joke.",
    "What time does the shop open?", "Can you help me with my homework?", "What is 5?", "Stop the war.",
])
def test_other_questions_go_to_the_llm(router, heard):
    assert router.route(heard) is None


def test_clock_uses_local_time():
    noon = datetime(2026, 3, 9, 15, 7, tzinfo=timezone.utc)
    router = SkillRouter(now=lambda: noon)
    assert router.route("What time is it?").text == "It's 3:07 PM."
    assert router.route("Um, what's the time?").text == "It's 3:07 PM."
    assert router.route("What's the date today?").text == "Today is Monday, March 9, 2026."
    assert router.route("What day is it?").skill == "clock"


def test_timer_announces_itself_and_can_be_asked_and_cancelled():
    said: list[str] = []
    rang = threading.Event()
    router = SkillRouter(announce=lambda text, skill: (said.append((text, skill)), rang.set()))
    try:
        assert router.route("How long is left?").text == "There is no timer running."
        answer = router.route("Set a timer for one second.")
        assert (answer.skill, answer.text) == ("timer", "Timer set for 1 second.")
        assert not rang.wait(1.5), "the timer runs only once the turn is certain: its action starts it"
        answer.action()
        assert router.route("how much time is left on the timer").text == "You have 1 second left on your timer."
        assert rang.wait(10)
        assert said == [("Time's up! Your timer for 1 second is done.", "timer")]

        rang.clear()
        router.route("Set a timer for one and a half minutes, please.").action()
        answer = router.route("Cancel the timer.")
        assert answer.text == "Timer cancelled."
        answer.action()
        assert router.route("How long is left?").text == "There is no timer running."
        assert router.route("Cancel the timer.").text == "There is no timer to cancel."
    finally:
        router.close()
    assert not rang.is_set()


def test_stop_says_nothing_and_interrupts():
    interrupted = []
    router = SkillRouter(interrupt=lambda: interrupted.append(True))
    for heard in ("Stop.", "Be quiet!", "Okay, stop talking.", "Shut up", "Please be quiet now."):
        answer = router.route(heard)
        assert (answer.skill, answer.text, answer.remember) == ("stop", "", False), heard
        answer.action()
    assert len(interrupted) == 5


def test_repeat_says_the_last_reply_again(router):
    assert router.route("Repeat that.").text == "I haven't said anything yet."
    for i, sentence in enumerate(["Paris is the capital of France.", "It is on the Seine."]):
        router.observe(Event("sentence", 3, text=sentence, data={"index": i}))
    for heard in ("Repeat that.", "Sorry, can you say that again?", "What did you say?"):
        answer = router.route(heard)
        assert (answer.skill, answer.text) == ("repeat", "Paris is the capital of France. It is on the Seine.")
    router.observe(Event("sentence", 5, text="Timer set for 5 seconds.", data={"index": 0}))
    assert router.route("repeat that").text == "Timer set for 5 seconds."


def test_what_can_you_do_lists_every_skill(router):
    answer = router.route("What can you do?")
    assert answer.skill == "capabilities"
    for skill in router.skills:
        if skill.name != "capabilities":
            assert skill.description in answer.text
    assert router.route("help").skill == "capabilities"
