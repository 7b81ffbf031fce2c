"""The WER normalizer treats written and spoken numbers alike, and counts real errors."""

import pytest

from models.wer import corpus_wer, normalize, number_words, wer


@pytest.mark.parametrize("n, words", [(0, "zero"), (12, "twelve"), (35, "thirty five"), (100, "one hundred"),
                                      (1999, "one thousand nine hundred ninety nine")])
def test_number_words(n, words):
    assert number_words(n) == words


def test_normalize_money_ordinals_and_punctuation():
    assert normalize("You billed me $35.50, the 3rd time!") == \
        "you billed me thirty five dollars fifty cents the third time".split()


def test_wer_counts_substitutions_insertions_deletions():
    assert wer("i ordered one book", "I ordered 1 book.") == 0
    assert wer("i ordered one book", "i ordered a book") == 0.25
    assert wer("i ordered one book", "ordered one book please") == 0.5
    assert corpus_wer([("a b c d", "a b c d"), ("e f", "e")]) == pytest.approx(1 / 6)
