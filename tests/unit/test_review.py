"""The review's rules: states, the first decision labels a draft, redraft levels, marks in place, corrected rates."""

from __future__ import annotations

import pytest

from tests.states import job_result
from worker import review
from worker.contracts import ParagraphResult, ReviewRequest
from worker.errors import InputError
from worker.marks import result_marks, source_marks
from worker.profiles import review_figures
from worker.quality import check

SOURCES = [
    "The Magna Carta was sealed by King John in 1215. It limited the power of the king.",
    "Bees carry pollen from flower to flower. This helps plants make seeds and fruit.",
]
DRAFTS = ["King John agreed to the Magna Carta in 1215. It made the king follow rules.", "Bees move pollen."]


def begun() -> review.JobReview:
    paragraphs = [
        ParagraphResult(index=i + 1, text=d, level="int4", quality=check(s, d, 4))
        for i, (s, d) in enumerate(zip(SOURCES, DRAFTS, strict=True))
    ]
    result = job_result(text="\n\n".join(DRAFTS), grade_level=4, paragraphs=[p.model_dump() for p in paragraphs])
    return review.begin(result, SOURCES, 1.0)


def act(state: review.JobReview, **body: object) -> tuple[review.JobReview, list[review.HumanLabel]]:
    return review.apply(state, ReviewRequest.model_validate(body), SOURCES, 4, 2.0)


def test_states_follow_the_paragraphs() -> None:
    state = begun()
    assert state.state == "unreviewed"
    state, labels = act(state, action="accept", paragraph=1)
    assert state.state == "in_review" and [(x.paragraph, x.accepted) for x in labels] == [(1, True)]
    state, labels = act(state, action="edit", paragraph=2, text="Bees move pollen so plants can make seeds.")
    assert state.state == "edited" and [(x.paragraph, x.accepted, x.output) for x in labels] == [(2, False, DRAFTS[1])]
    assert labels[0].edited == "Bees move pollen so plants can make seeds."
    assert act(begun(), action="accept")[0].state == "accepted"


def test_only_the_first_decision_labels_a_draft() -> None:
    state, _ = act(begun(), action="accept", paragraph=1)
    state, labels = act(state, action="edit", paragraph=1, text="King John signed the Magna Carta in 1215.")
    assert labels == [] and state.paragraphs[0].state == "edited"
    state, labels = act(state, action="accept")  # the rest: paragraph 2 only
    assert [x.paragraph for x in labels] == [2]


def test_an_edit_is_rechecked_and_the_result_follows() -> None:
    state, _ = act(begun(), action="edit", paragraph=2, text="Bees were found by Dr Brown in 1901.")
    report = state.paragraphs[1].quality
    assert report.verdict == "needs_review" and "1901" in report.invented.numbers
    result = job_result(text="\n\n".join(DRAFTS), grade_level=4, paragraphs=[
        ParagraphResult(index=i + 1, text=d, level="int4", quality=check(s, d, 4)).model_dump()
        for i, (s, d) in enumerate(zip(SOURCES, DRAFTS, strict=True))
    ])  # fmt: skip
    changed = review.reviewed_result(result, state, "\n\n".join(SOURCES))
    assert changed.text == DRAFTS[0] + "\n\nBees were found by Dr Brown in 1901."
    assert changed.paragraphs is not None and changed.paragraphs[1].quality == report
    assert changed.quality is not None and "1901" in changed.quality.invented.numbers


def test_a_redraft_runs_one_level_more_precise_unless_a_level_is_asked() -> None:
    paragraph = begun().paragraphs[0]
    assert review.redraft_level(paragraph, None) == "int8"
    assert review.redraft_level(paragraph.model_copy(update={"level": "fp16"}), None) == "fp16"
    assert review.redraft_level(paragraph, "int2") == "int2"


def test_a_taken_redraft_labels_both_drafts() -> None:
    state, labels = review.apply(begun(), ReviewRequest(action="redraft", paragraph=2), SOURCES, 4, 2.0,
                                 redraft_job="job-2")  # fmt: skip
    assert labels == [] and state.paragraphs[1].state == "redrafting" and state.state == "in_review"
    new = review.Draft("Bees move pollen. Then plants make seeds and fruit.", "int8", check(SOURCES[1], "x", 4))
    state, labels = review.apply(state, ReviewRequest(action="use_redraft", paragraph=2), SOURCES, 4, 3.0, new)
    assert [(x.level, x.accepted) for x in labels] == [("int4", False), ("int8", True)]
    assert (state.paragraphs[1].state, state.paragraphs[1].level, state.paragraphs[1].redraft_job) == (
        "redrafted", "int8", None,
    )  # fmt: skip
    with pytest.raises(review.ReviewConflict):
        review.apply(state, ReviewRequest(action="use_redraft", paragraph=2), SOURCES, 4, 4.0, new)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "edit", "paragraph": 1, "text": " \n "}, "text"),
        ({"action": "edit", "paragraph": 1, "text": "x" * 101}, "text"),
        ({"action": "redraft", "paragraph": 1, "text": "x"}, "text"),
        ({"action": "accept", "paragraph": 1, "level": "int8"}, "level"),
    ],
)
def test_requests_that_do_not_fit_their_action_name_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(InputError) as caught:
        review.checked_request(ReviewRequest.model_validate(body), max_chars=100)
    assert caught.value.field == field


def test_marks_stand_where_the_findings_are() -> None:
    source = "The treaty was signed in Paris in 1783 by Benjamin Franklin. It ended the war."
    output = (
        "The treaty was signed in 1790 by George Washington and many other important people from different "
        "countries who travelled a very long way. It ended the war."
    )
    report = check(source, output, 3)
    marks = result_marks(output, report)
    spans = {(m.kind, output[m.start : m.end]) for m in marks}
    assert ("invented", "1790") in spans and ("invented", "George") in spans
    long = [m for m in marks if m.kind == "long_sentence"]
    assert [output[m.start : m.end] for m in long] == [output[: output.index(". ") + 1]]
    lost = {(m.kind, source[m.start : m.end]) for m in source_marks(source, report)}
    assert ("dropped", "1783") in lost and ("dropped", "Paris") in lost


def test_reviews_correct_the_checkers_pass_rate() -> None:
    none = review_figures({}, 0.6)
    assert none == {"reviewed": 0, "review_accept_rate": None, "reviewed_pass_rate": None}
    # 4 checker passes reviewed, 3 accepted; 4 flags reviewed, 1 accepted anyway
    raw = {"reviewed": "8", "reviewed_accepted": "4", "reviewed_flagged": "4", "reviewed_flagged_accepted": "1"}
    figures = review_figures(raw, 0.6)
    assert figures["review_accept_rate"] == 0.5
    assert figures["reviewed_pass_rate"] == pytest.approx(0.6 * 0.75 + 0.4 * 0.25)
