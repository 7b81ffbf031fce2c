"""Complaint-aware text sentiment: better than VADER on complaints, identical where no cue is found."""

import pytest

from models.text_sentiment import complaint_cues, text_score, vader_score

COMPLAINTS = [
    "I have called three times and nobody helps me.",
    "This is the second time this has happened.",
    "I want to cancel my account.",
    "Nobody ever calls me back.",
    "I've been on hold for forty minutes.",
    "You charged me twice for the same order.",
    "What are you going to do about it?",
    "My package never arrived.",
]


@pytest.mark.parametrize("sentence", COMPLAINTS)
def test_complaints_score_clearly_negative_and_below_vader(sentence):
    assert text_score(sentence) <= -0.3
    assert text_score(sentence) < vader_score(sentence) - 0.2


@pytest.mark.parametrize("sentence", [
    "Thank you so much, that was very helpful.",
    "I would like to check the status of my order.",
    "The weather is lovely today.",
    "I hate Mondays but I love this coffee.",
    "Can you call me back on Thursday?",
])
def test_ordinary_text_keeps_vaders_score(sentence):
    assert complaint_cues(sentence) == []
    assert text_score(sentence) == vader_score(sentence)


def test_cues_stack_but_stay_in_range():
    heavy = "This is the third time I called, nobody helps, I am fed up and I want to cancel my account. Unacceptable!"
    assert len(complaint_cues(heavy)) >= 4
    assert -1.0 <= text_score(heavy) <= -0.9
