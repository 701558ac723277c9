"""The quality checker on real texts: what it flags, what it lets through, and the words it gives."""

from __future__ import annotations

import pytest

from worker import quality
from worker.quality import QualityReport, check

VACCINES = (
    "Vaccines prepare the immune system to recognise a pathogen without the person first suffering the disease. "
    "A vaccine contains a weakened or inactivated form of the microbe, or merely a fragment of one of its proteins, "
    "which the body identifies as foreign. White blood cells respond by manufacturing antibodies and by retaining "
    "memory cells, so that a subsequent encounter with the genuine pathogen provokes a rapid and decisive defence."
)
GOOD_VACCINES = (
    "A vaccine gets your body ready to fight a germ before you ever get sick from it. It holds a weak or dead form "
    "of the germ, or just a small piece of it. Your body sees it as something from outside. White blood cells then "
    "make antibodies and keep memory cells. If the real germ comes later, the body fights back fast and strong."
)
RAILROAD = (
    "The construction of the transcontinental railroad, completed in 1869, fundamentally transformed the economic "
    "and demographic landscape of the United States. Thousands of labourers, many of them Chinese and Irish "
    "immigrants, endured perilous conditions to lay track across deserts and mountain passes."
)


def test_a_faithful_easy_rewrite_passes() -> None:
    report = check(VACCINES, GOOD_VACCINES, 6)
    assert report.verdict == "pass", report.reasons
    assert report.grade is not None and report.grade_error == pytest.approx(report.grade - 6, abs=0.01)
    assert report.reasons == []


def test_made_up_year_and_name_are_named_in_the_reason() -> None:
    report = check(VACCINES, "The first vaccine was developed by the British in 1953.", 6)
    assert report.verdict == "needs_review"
    assert report.invented.numbers == ["1953"]
    assert report.invented.names == ["British"]
    assert "adds '1953' and 'British', not in the text" in report.reasons


def test_numbers_and_names_of_the_source_are_not_invented_in_other_forms() -> None:
    output = (
        "The railroad was finished in 1869. Thousands of workers from China and Ireland, Chinese and Irish people, "
        "built it."
    )
    report = check(RAILROAD, output, 6)
    assert report.invented.numbers == []
    assert "Chinese" not in report.invented.names and "Irish" not in report.invented.names
    # a name of the same word family is supported ("China" by "Chinese"); one that is not, is flagged
    assert "China" not in report.invented.names and "Ireland" in report.invented.names


def test_plurals_and_inflections_match_the_source() -> None:
    src = "The bacteria converted the nitrates that the plants absorbed."
    report = check(src, "Bacteria convert nitrate. Plants absorb it.", 5)
    assert report.invented.words == [] and report.invented.names == []


def test_spelled_out_numbers_match_digits() -> None:
    src = "The wall was built over roughly two thousand years by many dynasties."
    assert check(src, "People built the wall over 2,000 years.", 4).invented.numbers == []
    assert check(src, "People built the wall over 3,000 years.", 4).invented.numbers == ["3,000"]


def test_added_words_short_or_common_are_allowed_rare_ones_flagged() -> None:
    src = "A metaphor describes one thing by saying that it is another thing."
    easy = check(src, "A metaphor says one thing is another thing. It helps you see it in a new way.", 5)
    assert not quality.adds_content(easy.invented)
    lecture = check(src, "A metaphor is a rhetorical device of literary innovation and linguistic sophistication.", 5)
    assert quality.adds_content(lecture.invented)
    assert {"rhetorical", "sophistication"} <= set(lecture.invented.words)
    assert "innovation" not in lecture.invented.words, "a common word is not invented content"


def test_the_movie_metaphor_of_a_small_model_is_caught() -> None:
    src = (
        "A metaphor is a figure of speech that describes one thing by asserting that it is another, without using "
        "comparative words such as 'like' or 'as'."
    )
    output = (
        'The movie "The Lion\'s" is based on the idea that the movie is a metaphor for the "war on terror" that the '
        "United States has been waging since 1930."
    )
    report = check(src, output, 7)
    assert report.verdict == "needs_review"
    assert report.invented.numbers == ["1930"]
    assert {"Lion's", "United", "States"} <= set(report.invented.names)


def test_copy_is_caught() -> None:
    report = check(VACCINES, VACCINES, 6)
    assert report.copied and report.copy_similarity == 1.0
    assert any("word for word" in r for r in report.reasons)
    assert not check(VACCINES, GOOD_VACCINES, 6).copied


def test_an_answer_to_another_text_has_low_coverage() -> None:
    report = check(VACCINES, "The human body is made up of many different parts.", 6)
    assert not report.coverage_ok
    assert report.coverage < quality.COVERAGE_MIN
    assert "Vaccines" in report.missing
    assert any("key content" in r for r in report.reasons)


def test_grade_far_above_the_target_is_reported_in_words() -> None:
    report = check(RAILROAD, RAILROAD, 3)
    assert not report.grade_ok
    assert f"grade {report.grade:.1f} for a grade-3 target" in report.reasons


def test_short_rare_words_do_not_pass_as_easy() -> None:
    src = "Gut flora, kelp, cysts and zymes fill the fen."
    report = check(src, "Gut flora, kelp, cysts and zymes fill the fen.", 3)
    assert report.grade is not None and report.grade < 5  # Flesch-Kincaid alone calls it easy
    assert not report.vocabulary_ok
    assert {"kelp", "zymes"} <= set(report.rare_words)


def test_empty_output_needs_review() -> None:
    report = check(VACCINES, "", 6)
    assert report.verdict == "needs_review" and report.grade is None
    assert report.reasons == ["no simplified text came back"]


def test_preference_puts_a_pass_above_a_failure_and_facts_above_grades() -> None:
    texts = (GOOD_VACCINES, "Vaccines came from Britain in 1953.", VACCINES)
    good, invented, copied = (check(VACCINES, t, 6) for t in texts)
    ranked = sorted([invented, copied, good], key=quality.preference)
    assert ranked[-1] is good
    assert ranked[0] is invented  # a made-up fact is worse than a copy


def test_combined_document_report_names_the_paragraph() -> None:
    first = check(VACCINES, GOOD_VACCINES, 6)
    second = check(RAILROAD, "The railroad opened in 1901 in France.", 6)
    whole = check(VACCINES + "\n\n" + RAILROAD, GOOD_VACCINES + "\n\n" + "The railroad opened in 1901 in France.", 6)
    combined = quality.combine(whole, [first, second])
    assert combined.verdict == "needs_review"
    assert all(r.startswith("paragraph 2: ") for r in combined.reasons)
    assert QualityReport.model_validate(combined.model_dump(mode="json")) == combined


def test_grade_of_empty_output_is_none_and_a_hard_text_grades_higher() -> None:
    assert check(VACCINES, "   ", 6).grade is None
    assert check(VACCINES, "The cat sat on the mat.", 6).grade < check(VACCINES, RAILROAD, 6).grade  # type: ignore[operator]


def test_over_simplification_is_its_own_reason_with_the_facts_left_out() -> None:
    report = check(RAILROAD, "A railroad was built. People worked on it.", 6)
    assert report.over_simplified and report.length_ratio < quality.MIN_LENGTH_RATIO
    assert {"1869", "Chinese", "Irish"} <= set(report.dropped_facts)
    reason = next(r for r in report.reasons if r.startswith("over-simplified: "))
    assert "'1869'" in reason and "of the text's length" in reason


def test_a_meaning_score_above_the_limit_sends_a_passing_rewrite_to_review() -> None:
    fine = check(VACCINES, GOOD_VACCINES, 6, meaning=0.1)
    assert fine.verdict == "pass" and fine.meaning_ok and fine.meaning_score == 0.1
    doubted = check(VACCINES, GOOD_VACCINES, 6, meaning=0.99)
    assert doubted.verdict == "needs_review" and not doubted.meaning_ok
    assert any(r.startswith("may change what the text says") for r in doubted.reasons)
    assert check(VACCINES, GOOD_VACCINES, 6).meaning_ok, "not asked: no verdict on meaning"


def test_too_simple_for_the_grade_says_to_keep_more_detail() -> None:
    report = check(VACCINES, "Shots help you. They make you strong. Germs go away. You do not get sick.", 10)
    assert not report.grade_ok and report.grade_error is not None and report.grade_error < 0
    assert any("too simple" in r for r in report.reasons)


def test_closeness_prefers_the_rewrite_that_keeps_more_and_adds_less() -> None:
    keeps = quality.closeness(VACCINES, GOOD_VACCINES)
    drifts = quality.closeness(VACCINES, "Doctors give shots at school. Kids line up and wait for their turn.")
    assert 0 <= drifts < keeps <= 1
