"""Documents: paragraphs found, long ones cut at sentence boundaries, and joined back in order."""

from __future__ import annotations

import pytest

from worker.document import Part, fit, join_document, paragraphs, split_document, split_sentences

DOC = (
    "The Moon orbits Earth. It reflects\nsunlight.\n\n"
    "Tides rise and fall twice a day.\n   \n"
    "Dr. Smith measured 3.5 metres at 9 a.m. on the shore. The sea was calm!"
)


def test_blank_lines_separate_paragraphs_and_single_breaks_are_wrapping() -> None:
    assert paragraphs(DOC) == [
        "The Moon orbits Earth. It reflects sunlight.",
        "Tides rise and fall twice a day.",
        "Dr. Smith measured 3.5 metres at 9 a.m. on the shore. The sea was calm!",
    ]
    assert paragraphs("\n\n  one  \n\n\n\n") == ["one"]


def test_sentences_are_split_at_end_punctuation_before_a_capital() -> None:
    assert split_sentences('He said "Stop." Then he left. 3 people stayed? Yes.') == [
        'He said "Stop."',
        "Then he left.",
        "3 people stayed?",
        "Yes.",
    ]
    assert split_sentences("It measured 3.5 m, about 11 ft.") == ["It measured 3.5 m, about 11 ft."]


def test_a_long_paragraph_is_cut_into_whole_sentences_within_the_budget() -> None:
    sentences = [f"Sentence number {i} says something about the sea." for i in range(20)]
    paragraph = " ".join(sentences)
    pieces = fit(paragraph, 200)
    assert len(pieces) > 1
    assert all(len(p) <= 200 for p in pieces)
    assert " ".join(pieces) == paragraph
    assert all(p.endswith(".") for p in pieces)  # cut between sentences, never inside one


def test_a_sentence_longer_than_the_budget_is_cut_at_spaces() -> None:
    sentence = "word " * 60
    pieces = fit(sentence.strip(), 50)
    assert all(len(p) <= 50 for p in pieces)
    assert " ".join(pieces) == sentence.strip()


def test_split_and_join_keep_the_order_and_the_paragraphs() -> None:
    parts = split_document(DOC, 40)
    assert [p.paragraph for p in parts] == sorted(p.paragraph for p in parts)
    assert {p.paragraph for p in parts} == {0, 1, 2}
    joined = join_document(parts, [p.text.upper() for p in parts])
    assert joined.split("\n\n") == [p.upper() for p in paragraphs(DOC)]


def test_join_checks_the_counts() -> None:
    with pytest.raises(ValueError, match="2 parts but 1 texts"):
        join_document([Part(0, "a"), Part(1, "b")], ["A"])
    with pytest.raises(ValueError, match="positive"):
        split_document("text", 0)
