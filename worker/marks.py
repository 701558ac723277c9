"""Where the checker's findings are: spans of a result (added terms, hard words, long sentences) and of its
source (key terms and facts the result lost), for a reviewer to see them in place. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from worker.contracts import Mark, MarkKind, QualityReport
from worker.feedback import too_long
from worker.readability import grade_target, sentence_spans, words


def term_spans(text: str, term: str) -> list[tuple[int, int]]:
    """Every place `term` stands in `text` as whole words, ignoring case."""
    if not term.strip():
        return []
    pattern = re.compile(rf"(?<!\w){re.escape(term)}(?!\w)", re.IGNORECASE)
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


def _terms(text: str, terms: Iterable[str], kind: MarkKind, note: str) -> list[Mark]:
    return [
        Mark(start=start, end=end, kind=kind, note=note.format(term=term))
        for term in dict.fromkeys(terms)
        for start, end in term_spans(text, term)
    ]


def long_sentences(text: str, target_grade: int) -> list[Mark]:
    """The sentences too long for the grade, each with its length against the comfortable one."""
    comfortable = grade_target(target_grade).words_per_sentence
    marks: list[Mark] = []
    for start, end in sentence_spans(text):
        length = len(words(text[start:end]))
        if too_long(length, target_grade):
            note = f"{length} words: about {comfortable} suit grade {target_grade}"
            marks.append(Mark(start=start, end=end, kind="long_sentence", note=note))
    return marks


def result_marks(text: str, report: QualityReport) -> list[Mark]:
    """The findings in a result: terms the source does not have, hard words, sentences too long; by position."""
    invented = report.invented
    marks = [
        *_terms(text, invented.facts, "invented", "'{term}' is not in the source: a made-up fact?"),
        *_terms(text, invented.words, "invented", "'{term}' is not in the source"),
        *_terms(text, report.rare_words, "rare", "'{term}' is a hard word for this grade"),
        *long_sentences(text, report.target_grade),
    ]
    return sorted(marks, key=lambda m: (m.start, -m.end))


def source_marks(source: str, report: QualityReport) -> list[Mark]:
    """The source's numbers, names and key terms that the result lost, by position."""
    dropped = set(report.dropped_facts)
    marks = [
        *_terms(source, report.dropped_facts, "dropped", "'{term}' is left out of the result"),
        *_terms(source, [t for t in report.missing if t not in dropped], "missing", "'{term}' is lost in the result"),
    ]
    return sorted(marks, key=lambda m: (m.start, -m.end))
