"""The grade the checker computes: Flesch-Kincaid with syllables from the CMU dictionary, the same on every host."""

from __future__ import annotations

import pytest

from worker import readability
from worker.readability import flesch_kincaid, grade_target, sentence_lengths, sentences, syllables


def test_syllables_come_from_the_pronouncing_dictionary_and_pyphen_for_unknown_words() -> None:
    assert [syllables(w) for w in ("the", "water", "every", "photosynthesis")] == [1, 2, 3, 5]
    assert syllables("Photosynthesis") == 5, "case does not matter"
    assert syllables("zorblaxification") >= 3, "a word the dictionary lacks is split by Pyphen"


def test_flesch_kincaid_by_its_formula() -> None:
    text = "The cat sat on the mat. It was warm."
    words, sents = 9, 2
    syl = sum(syllables(w) for w in readability.words(text))
    expected = 0.39 * words / sents + 11.8 * syl / words - 15.59
    assert flesch_kincaid(text) == pytest.approx(round(expected, 2))
    assert flesch_kincaid("   ") is None and flesch_kincaid("1869 1900") is None


def test_a_long_sentence_of_long_words_grades_higher_than_short_plain_ones() -> None:
    plain = "Bees fly. They make honey. Flowers need them."
    hard = "Pollination by apian intermediaries constitutes an indispensable ecological mechanism for angiosperms."
    assert flesch_kincaid(hard) > flesch_kincaid(plain) + 10  # type: ignore[operator]


def test_sentences_end_at_stops_not_at_initials_abbreviations_or_decimals() -> None:
    text = "Mt. St. Helens erupted in 1980. It was big! The U.S. army came. Pi is 3.14 here. It makes ATP. Done"
    assert sentences(text) == [
        "Mt. St. Helens erupted in 1980.",
        "It was big!",
        "The U.S. army came.",
        "Pi is 3.14 here.",
        "It makes ATP.",
        "Done",
    ]
    assert sentence_lengths("One two three. Four five.") == [3, 2]


def test_the_grade_asks_for_sentences_of_a_length() -> None:
    assert [grade_target(g).words_per_sentence for g in (3, 5, 8)] == [10, 13, 18]
    assert grade_target(1).words_per_sentence == 7, "never below the floor"
    assert grade_target(3).longest_sentence == 16
