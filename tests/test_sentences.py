from voice.history import Conversation, Turn
from voice.sentences import SentenceSplitter, clean_for_speech


def feed(splitter, text, step=3):
    out = []
    for i in range(0, len(text), step):
        out += splitter.push(text[i:i + step])
    return out + splitter.flush()


def test_sentences_are_cut_as_tokens_arrive():
    s = SentenceSplitter()
    assert s.push("Paris is the capital") == []
    assert s.push(" of France. It is") == ["Paris is the capital of France."]
    assert s.flush() == ["It is"]


def test_a_word_and_its_full_stop_end_a_piece_without_waiting_for_the_next_token():
    s = SentenceSplitter()
    assert [s.push(t) for t in ["The", " capital", " is", " Paris", "."]][-1] == ["The capital is Paris."]
    assert [s.push(t) for t in [" Really", "?", "!", " Yes", "!"]] == [[], ["Really?"], [], [], ["Yes!"]]
    assert s.flush() == []  # a "!" on its own is nothing to say
    for tokens in (["It", " costs", " 3", "."], ["Ask", " Dr", "."], ["J", "."]):
        s = SentenceSplitter()
        assert [s.push(t) for t in tokens] == [[]] * len(tokens), tokens  # a decimal, an abbreviation, an initial
    s = SentenceSplitter(first_clause_words=3)
    assert [s.push(t) for t in ["Well", " the", " answer", " is", " simple", ","]][-1] == ["Well the answer is simple,"]
    s = SentenceSplitter(first_clause_words=3)
    assert [s.push(t) for t in ["We", " have", " about", " 1", ",", "000"]] == [[]] * 6  # a thousands separator


def test_abbreviations_decimals_and_initials_do_not_split():
    text = "Dr. Smith paid 3.50 dollars, e.g. for J. R. R. Tolkien books. Done!"
    assert feed(SentenceSplitter(), text) == ["Dr. Smith paid 3.50 dollars, e.g. for J. R. R. Tolkien books.", "Done!"]


def test_first_clause_can_be_cut_at_a_comma():
    out = feed(SentenceSplitter(first_clause_words=3), "Well, the answer is simple, it is forty two. Yes.")
    assert out == ["Well, the answer is simple,", "it is forty two.", "Yes."]


def test_first_piece_can_end_before_a_phrase_once_the_sentence_goes_on():
    """Replies SmolLM2 wrote in the bench: the listener waits for the first piece only."""
    out = feed(SentenceSplitter(first_clause_words=4), "The planet Earth is the only planet in our solar "
               "system that we know of. The true printed book was produced by the 19th century.")
    assert out == ["The planet Earth is the only planet", "in our solar system that we know of.",
                   "The true printed book was produced by the 19th century."]  # only the first piece


def test_first_piece_is_not_cut_near_the_end_of_a_sentence_or_inside_a_phrase():
    for text, first in [
            ("The capital of France is Paris.", "The capital of France is Paris."),  # too few words before "of"
            ("Tea is best brewed in water.", "Tea is best brewed in water."),  # ends two words after "in"
            ("The moon is a mysterious and beautiful body.", "The moon is a mysterious and beautiful body."),
            ("The most common type of tea is green tea, said to be", "The most common type of tea is green tea,")]:
        assert feed(SentenceSplitter(first_clause_words=4), text)[0] == first  # "and", "of", "to" join words


def test_markup_and_emoji_are_not_spoken():
    assert clean_for_speech("**Sure!** 😀 Here:\n- one\n- two") == "Sure! Here: one two"


def test_history_drops_oldest_turns_to_fit():
    conv = Conversation("sys", lambda t: len(t.split()), budget_tokens=70)
    for i in range(10):
        conv.add(Turn(f"question {i} " * 2, f"answer {i} " * 2))
    msgs = conv.messages("new question")
    assert msgs[0] == {"role": "system", "content": "sys"} and msgs[-1]["content"] == "new question"
    kept = [m["content"] for m in msgs[1:-1]]
    assert kept and "answer 9" in kept[-1] and not any("question 0" in k for k in kept)


def test_history_is_dropped_in_steps_so_the_prompt_begins_the_same_for_many_turns():
    """Dropping one turn at a time would change the prompt's beginning on every turn once the
    history is full, and llama.cpp would read the whole prompt again each time."""
    words = lambda t: len(t.split())  # noqa: E731
    conv = Conversation("sys", words, budget_tokens=300)
    oldest_seen = []
    for i in range(40):
        conv.add(Turn(f"question {i}", f"answer {i}"))
        msgs = conv.messages("next")
        assert msgs[-2]["content"] == f"answer {i}", "the latest turn is always there"
        cost = Conversation.PROMPT_OVERHEAD_TOKENS + sum(words(m["content"]) + Conversation.MESSAGE_OVERHEAD_TOKENS
                                                         for m in msgs)
        assert cost <= 300
        oldest_seen.append(msgs[1]["content"])
    changes = sum(a != b for a, b in zip(oldest_seen, oldest_seen[1:]))
    assert 1 <= changes <= 5, oldest_seen  # one turn at a time: 23 changes


def test_interrupted_turn_is_marked_on_the_users_side():
    conv = Conversation("sys", len, budget_tokens=10_000)
    conv.add(Turn("hi", "Hello there...", interrupted=True))
    assert [m["content"] for m in conv.messages("x")[1:]] == ["hi", "Hello there...", "(I interrupted you.) x"]
    conv.add(Turn("x", "Sure."))
    assert [m["content"] for m in conv.messages("y")[3:]] == ["(I interrupted you.) x", "Sure.", "y"]


def test_a_long_sentence_is_spoken_in_pieces_cut_at_a_comma_or_before_a_clause():
    long = ("The moon is a mysterious and beautiful celestial body that has fascinated people for "
            "thousands of years, inspiring poets and scientists alike with its changing phases. Yes.")
    out = feed(SentenceSplitter(max_words=8), long)
    assert out == ["The moon is a mysterious and beautiful celestial body",
                   "that has fascinated people for thousands of years,",
                   "inspiring poets and scientists alike with its changing phases.", "Yes."]
    assert " ".join(out) == long


def test_a_long_sentence_without_a_place_to_cut_is_cut_after_max_words():
    out = feed(SentenceSplitter(max_words=5), "One two three four five six seven eight nine ten eleven.")
    assert out == ["One two three four five", "six seven eight nine ten eleven."]


def test_a_sentence_a_little_over_max_words_is_not_cut():
    text = "The sky on a clear day is usually a deep shade of blue."
    assert feed(SentenceSplitter(max_words=10), text) == [text]
