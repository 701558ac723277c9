"""The checker's findings as instructions for a revision: concrete, naming the sentence, word or fact."""

from __future__ import annotations

from worker.feedback import MAX_NOTES, revision_notes
from worker.quality import check
from worker.readability import grade_target

SOURCE = (
    "In 1215 King John of England sealed Magna Carta at Runnymede, a charter that limited the power of the "
    "monarch and established that no free man could be imprisoned without the lawful judgement of his peers."
)


def test_a_long_sentence_is_named_with_its_length_and_the_grade_s_limit() -> None:
    draft = (
        "In 1215 King John of England sealed Magna Carta at Runnymede, which was a charter that limited the power "
        "of the monarch and said that no free man could be put in prison without a fair trial by his peers."
    )
    notes = revision_notes(check(SOURCE, draft, 4), draft)
    words = grade_target(4).words_per_sentence
    assert any(n.startswith("sentence 1 has ") and f"at most {words} words" in n for n in notes), notes


def test_an_added_term_must_go_and_a_dropped_fact_must_stay() -> None:
    draft = "King John signed a paper at Windsor Castle. It said the king could not jail people without a trial."
    notes = revision_notes(check(SOURCE, draft, 6), draft)
    assert any("'Windsor'" in n and n.endswith("remove it") for n in notes), notes
    assert any(n.startswith("keep ") and "'1215'" in n for n in notes), notes


def test_too_simple_asks_for_more_detail_and_nothing_to_say_gives_no_notes() -> None:
    easy = "A king made a rule. It was a good rule."
    notes = revision_notes(check(SOURCE, easy, 10), easy)
    assert any(n.startswith("too simple for grade 10") for n in notes), notes
    good = (
        "In 1215, King John of England put his seal on Magna Carta at Runnymede. This charter limited the king's "
        "power. It said that no free man could be put in prison without the lawful judgement of his peers."
    )
    report = check(SOURCE, good, 5)
    assert report.passed, report.reasons
    assert revision_notes(report, good) == []
    assert len(revision_notes(check(SOURCE, "Runnymede.", 3), "Runnymede.")) <= MAX_NOTES
