"""The checker's findings as concrete instructions for the model: what to split, remove, keep or explain.

Pure. A failing draft goes back to the model with these notes (the gate's `revise` strategy): "sentence 2 has
31 words: split it into sentences of at most 13 words", "you added 'volcanoes': remove it", "keep '1215' and
'King John'", "too simple for grade 9: keep more of the detail". Notes name words and numbers exactly as
the texts write them, and come most important first.
"""

from __future__ import annotations

from worker.contracts import QualityReport
from worker.quality import GRADE_TOLERANCE, GRADE_TOLERANCE_BELOW, quoted
from worker.readability import grade_target, sentence_lengths

MAX_NOTES = 5
"""More instructions than this at once, and a small model follows none of them well."""
LONG_SENTENCE_SLACK = 3
"""A sentence this many words past the grade's comfortable length is named as too long."""


def too_long(length: int, target_grade: int) -> bool:
    """Whether a sentence of `length` words is long enough to split for a reader of `target_grade`."""
    return length > grade_target(target_grade).words_per_sentence + LONG_SENTENCE_SLACK


def revision_notes(report: QualityReport, draft: str) -> list[str]:
    """What to change in `draft` so that it passes, as instructions; empty when nothing can be said."""
    notes: list[str] = []
    if report.invented.facts or report.invented.words:
        notes.append(f"you added {quoted(report.invented.facts + report.invented.words)}, which the text does not "
                     "mention: remove it")  # fmt: skip
    if not report.meaning_ok:
        notes.append("check every sentence against the text: say only what the text says, and keep its conditions")
    if report.dropped_facts:
        notes.append(f"keep {quoted(report.dropped_facts)} from the text")
    if report.copied:
        notes.append("do not copy the text's sentences: say each point again in your own simple words")
    if report.over_simplified or not report.coverage_ok:
        missing = [t for t in report.missing if t not in report.dropped_facts][:4]
        also = f" (it leaves out {quoted(missing)})" if missing else ""
        notes.append(f"keep every main point of the text{also}")
    notes += grade_notes(report, draft)
    return notes[:MAX_NOTES]


def grade_notes(report: QualityReport, draft: str) -> list[str]:
    """Sentence by sentence, what makes the draft too hard or too simple for its target grade."""
    target = grade_target(report.target_grade)
    error = report.grade_error
    notes: list[str] = []
    if error is not None and error > GRADE_TOLERANCE:
        long = [(i, n) for i, n in enumerate(sentence_lengths(draft), 1) if too_long(n, report.target_grade)]
        for i, n in long[:2]:
            notes.append(f"sentence {i} has {n} words: split it into sentences of at most {target.words_per_sentence} "
                         "words")  # fmt: skip
        if not long or len(long) > 2:
            notes.append(f"use shorter sentences of about {target.words_per_sentence} words")
    if (error is not None and error > GRADE_TOLERANCE) or not report.vocabulary_ok:
        hard = report.rare_words[:4]
        if hard:
            notes.append(f"use everyday words instead of {quoted(hard)}, or explain them in simple words")
    if error is not None and error < -GRADE_TOLERANCE_BELOW:
        notes.append(f"too simple for grade {report.target_grade}: keep more of the detail, in sentences of about "
                     f"{target.words_per_sentence} words")  # fmt: skip
    return notes
