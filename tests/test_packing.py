"""Packing utterances into one window: planning, spans, and giving each its own words."""

from models.packing import CAPACITY, FULL_WINDOW, GAP, LONG_WINDOW, MARGIN, WINDOW, Segment, assign, assign_words, plan, spans, window_for


def test_plan_fills_a_window_and_always_takes_one():
    assert plan([3.0, 3.0, 3.0, 3.0, 3.0]) == 3  # 3 x (3 + 1.2) = 12.6 <= 13; a fourth would be 16.8
    assert plan([12.5, 1.0]) == 1
    assert plan([40.0]) == 1
    assert plan([]) == 1


def test_a_long_utterance_gets_a_larger_window():
    assert CAPACITY == WINDOW - MARGIN
    assert window_for(CAPACITY) == WINDOW < FULL_WINDOW < LONG_WINDOW == 30.0
    assert window_for(CAPACITY + 0.1) == FULL_WINDOW == window_for(FULL_WINDOW - MARGIN)
    assert window_for(FULL_WINDOW - MARGIN + 0.1) == LONG_WINDOW
    # A lone utterance on an idle machine takes at least the full window.
    assert window_for(1.0, full=True) == FULL_WINDOW == window_for(CAPACITY, full=True)
    assert window_for(FULL_WINDOW - MARGIN + 0.1, full=True) == LONG_WINDOW


def test_spans_leave_gaps():
    assert spans([2.0, 3.0]) == [(0.0, 2.0), (2.0 + GAP, 5.0 + GAP)]


def test_segments_go_to_their_own_utterance():
    item_spans = spans([2.0, 3.0, 1.5])
    segments = [Segment(0.0, 0.8, " first"), Segment(0.8, 1.9, " one."), Segment(3.3, 6.1, " second"),
                Segment(6.1, 6.2, " part."), Segment(7.5, 8.9, " third.")]
    texts, unsure = assign(segments, item_spans)
    assert texts == ["first one.", "second part.", "third."] and unsure == set()


def test_a_straddling_word_is_never_guessed():
    item_spans = spans([2.0, 3.0])  # (0, 2) and (3.2, 6.2)
    texts, unsure = assign([Segment(1.5, 3.6, " both")], item_spans)  # 0.5 s of speech on each side
    assert unsure == {0, 1}


def test_a_word_stretched_over_the_gap_goes_to_its_speech():
    # The aligner often starts an utterance's first word in the silence before it.
    item_spans = spans([2.5, 2.5])  # (0, 2.5) and (3.7, 6.2)
    words = [Segment(1.8, 2.4, " options"), Segment(2.4, 2.4, "."), Segment(2.4, 4.1, " You"), Segment(4.1, 4.4, " have")]
    texts, unsure = assign(words, item_spans)
    assert texts == ["options.", "You have"] and not unsure


def test_words_said_in_the_silence_send_their_utterance_to_be_redone():
    """Whisper sometimes says an utterance again after it (a packed window of the validation calls: "Great. Thanks so
    much Great. Thanks so much. I?"): the repeat is aligned where no utterance's audio is."""
    item_spans = spans([2.0, 1.3])  # (0, 2) and (3.2, 4.5)
    said = [Segment(0.1, 1.9, " Fine."), Segment(3.3, 3.8, " Great."), Segment(3.8, 4.45, " Thanks")]
    assert assign(said, item_spans) == (["Fine.", "Great. Thanks"], set())
    # After the last utterance's end, even a word of no length at all.
    texts, unsure = assign(said + [Segment(4.52, 4.52, " Great."), Segment(4.52, 6.9, " Thanks")], item_spans)
    assert texts[1] == "Great. Thanks Great. Thanks" and unsure == {1}
    # Wholly inside a gap: the utterance its middle goes to (here the first: before the middle of the gap).
    assert assign(said[:1] + [Segment(2.1, 2.5, " again")] + said[1:], item_spans)[1] == {0}
    assert assign(said[:1] + [Segment(2.7, 3.1, " so")] + said[1:], item_spans)[1] == {1}


def test_punctuation_stays_with_the_word_before_it():
    # The aligner stretches a full stop over the silence after it, past the border.
    words = [Segment(1.0, 1.9, " end"), Segment(1.9, 3.3, "."), Segment(3.4, 3.8, " Next"), Segment(3.8, 4.0, "?")]
    texts, unsure = assign(words, spans([2.0, 3.0]))
    assert texts == ["end.", "Next?"] and not unsure


def test_each_item_gets_its_words_in_its_own_time_with_punctuation_joined():
    item_spans = spans([2.0, 3.0])  # (0, 2) and (3.2, 6.2)
    words = [Segment(0.1, 0.6, " Hello", 0.9), Segment(0.6, 0.6, ",", 0.5), Segment(0.7, 1.5, " you", 0.8),
             Segment(3.4, 3.9, " Next", 0.7), Segment(3.9, 4.0, "?", 0.2)]
    item_words, unsure = assign_words(words, item_spans)
    assert not unsure
    assert item_words[0] == [Segment(0.1, 0.6, " Hello,", 0.9), Segment(0.7, 1.5, " you", 0.8)]
    # The second item's words count from its own start; a word keeps its own probability.
    assert [(round(w.start, 3), round(w.end, 3), w.text, w.probability) for w in item_words[1]] == [(0.2, 0.7, " Next?", 0.7)]
