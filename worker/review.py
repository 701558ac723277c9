"""A job's review: begun from its result, changed by one reviewer action at a time, and what each decision
teaches (a human label of the draft it judged). Pure: the web app reads and stores, this decides.

A paragraph is settled once it is accepted, edited or replaced by a new draft. The model's draft is labelled
once, by the first decision about it (accepted: the teacher takes it as it is; edited or replaced: not); a
new draft that is taken is labelled accepted. A later change of mind changes the text, not the labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from worker import quality
from worker.contracts import (
    SETTLED,
    GradeTolerance,
    JobResult,
    JobReview,
    ParagraphResult,
    ParagraphReview,
    QualityReport,
    ReviewAction,
    ReviewRequest,
    ReviewState,
    Verdict,
)
from worker.errors import InputError
from worker.policy import LEVELS, Level

CHANGED = frozenset({"edited", "redrafted"})
GRADE_TOLERANCE = GradeTolerance(above=quality.GRADE_TOLERANCE, below=quality.GRADE_TOLERANCE_BELOW)


@dataclass(frozen=True)
class Draft:
    """A paragraph's text as some level of the model wrote it, with the checker's report of it."""

    text: str
    level: Level
    report: QualityReport


@dataclass(frozen=True)
class HumanLabel:
    """A reviewer's verdict on one draft: whether a teacher takes it as it is (and the text they made of it)."""

    paragraph: int
    level: Level
    output: str
    accepted: bool
    checker_verdict: Verdict
    edited: str | None
    reviewer: str | None
    at: float


class ReviewConflict(Exception):
    """An action the paragraph's state does not allow now (no finished redraft to take, one already pending)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def check(source: str, text: str, grade: int) -> QualityReport:
    """The checker's word checks of a reviewer's text (the model is not asked about its meaning)."""
    return quality.check(source, text, grade)


def begin(result: JobResult, sources: Sequence[str], now: float) -> JobReview:
    """A review with every paragraph of the result unreviewed, its draft as the job returned it."""
    kept = result.paragraphs or [
        ParagraphResult(
            index=1,
            text=result.text,
            level=result.output_level or result.level,
            quality=result.quality or check(" ".join(sources), result.text, result.grade_level),
        )
    ]
    paragraphs = []
    for p in kept:
        report = p.quality if p.quality is not None else check(sources[p.index - 1], p.text, result.grade_level)
        paragraphs.append(
            ParagraphReview(
                index=p.index,
                text=p.text,
                level=p.level,
                quality=report,
                draft=p.text,
                draft_level=p.level,
                draft_verdict=report.verdict,
            )
        )
    return JobReview(state="unreviewed", updated_at=now, paragraphs=paragraphs)


def state_of(paragraphs: Sequence[ParagraphReview]) -> ReviewState:
    """unreviewed (nothing decided), in_review (some), accepted (all, as written) or edited (all, some changed)."""
    if all(p.state == "unreviewed" for p in paragraphs):
        return "unreviewed"
    if not all(p.state in SETTLED for p in paragraphs):
        return "in_review"
    return "edited" if any(p.state in CHANGED for p in paragraphs) else "accepted"


def redraft_level(paragraph: ParagraphReview, asked: Level | None) -> Level:
    """The level a new draft runs at: the one asked for, else one more precise than the draft's."""
    if asked is not None:
        return asked
    return LEVELS[max(LEVELS.index(paragraph.level) - 1, 0)]


def target(review: JobReview, request: ReviewRequest) -> ParagraphReview | None:
    """The paragraph an action is about (None: the whole job), or InputError naming `paragraph`."""
    if request.paragraph is None:
        if request.action != "accept":
            raise InputError("paragraph", f"is required for {request.action}: only accept applies to the whole job")
        return None
    count = len(review.paragraphs)
    if request.paragraph > count:
        raise InputError("paragraph", f"no paragraph {request.paragraph}: the job has {count} (numbered from 1)")
    return review.paragraphs[request.paragraph - 1]


def checked_request(request: ReviewRequest, max_chars: int) -> ReviewRequest:
    """The request, or InputError naming the field that does not fit its action."""
    if request.action == "edit":
        if request.text is None or not request.text.strip():
            raise InputError("text", "is required for edit: the paragraph's new text, not blank")
        if len(request.text) > max_chars:
            raise InputError(
                "text", f"is {len(request.text)} characters; a paragraph takes at most {max_chars} "
                "(DYNAQUANT_MAX_TEXT_CHARS)"
            )  # fmt: skip
    elif request.text is not None:
        raise InputError("text", f"only edit takes a text, not {request.action}")
    if request.level is not None and request.action != "redraft":
        raise InputError("level", f"only redraft takes a level, not {request.action}")
    return request


def label(p: ParagraphReview, accepted: bool, edited: str | None, request: ReviewRequest, now: float) -> HumanLabel:
    """The human label of a paragraph's draft."""
    return HumanLabel(p.index, p.draft_level, p.draft, accepted, p.draft_verdict, edited, request.reviewer, now)


def decide(
    p: ParagraphReview,
    request: ReviewRequest,
    source: str,
    grade: int,
    now: float,
    redraft: Draft | None = None,
    redraft_job: str | None = None,
) -> tuple[ParagraphReview, ReviewAction, list[HumanLabel]]:
    """One paragraph after an action, the action as stored, and the labels it gives (see the module's rule)."""
    first = p.state not in SETTLED
    action = ReviewAction(action=request.action, paragraph=p.index, reviewer=request.reviewer, at=now)
    if request.action == "accept":
        labels = [label(p, True, None, request, now)] if first else []
        state = p.state if p.state in SETTLED else "accepted"
        return p.model_copy(update={"state": state, "redraft_job": None}), action, labels
    if request.action == "edit":
        text = " ".join(str(request.text).split())
        report = check(source, text, grade)
        labels = [label(p, False, text, request, now)] if first else []
        changed = {"state": "edited", "text": text, "quality": report, "redraft_job": None}
        stored = action.model_copy(update={"before": p.text, "after": text, "level": p.level})
        return p.model_copy(update=changed), stored, labels
    if request.action == "redraft":  # one still on its way is refused by the caller, who knows its status
        level = redraft_level(p, request.level)
        stored = action.model_copy(update={"level": level, "redraft_job": redraft_job})
        state = p.state if p.state in SETTLED else "redrafting"
        return p.model_copy(update={"state": state, "redraft_job": redraft_job}), stored, []
    if redraft is None or p.redraft_job is None:
        raise ReviewConflict("paragraph", f"paragraph {p.index} has no finished new draft: ask for one with redraft")
    labels = [label(p, False, None, request, now)] if first else []
    labels.append(HumanLabel(p.index, redraft.level, redraft.text, True, redraft.report.verdict, None,
                             request.reviewer, now))  # fmt: skip
    changed = {"state": "redrafted", "text": redraft.text, "level": redraft.level, "quality": redraft.report,
               "redraft_job": None}  # fmt: skip
    stored = action.model_copy(
        update={"before": p.text, "after": redraft.text, "level": redraft.level, "redraft_job": p.redraft_job}
    )
    return p.model_copy(update=changed), stored, labels


def apply(
    review: JobReview,
    request: ReviewRequest,
    sources: Sequence[str],
    grade: int,
    now: float,
    redraft: Draft | None = None,
    redraft_job: str | None = None,
) -> tuple[JobReview, list[HumanLabel]]:
    """The review after one action (accept with no paragraph: every paragraph not yet decided), and its labels."""
    paragraph = target(review, request)
    paragraphs = list(review.paragraphs)
    if paragraph is None:
        labels = []
        for i, p in enumerate(paragraphs):
            if p.state not in SETTLED:
                paragraphs[i], _, found = decide(p, request, sources[i], grade, now)
                labels += found
        action = ReviewAction(action="accept", paragraph=None, reviewer=request.reviewer, at=now)
    else:
        i = paragraph.index - 1
        paragraphs[i], action, labels = decide(paragraph, request, sources[i], grade, now, redraft, redraft_job)
    changed = JobReview(
        state=state_of(paragraphs), updated_at=now, paragraphs=paragraphs, actions=[*review.actions, action]
    )
    return changed, labels


def reviewed_result(result: JobResult, review: JobReview, source: str) -> JobResult:
    """The job's result with the reviewed text: each paragraph's text and report as the review left them."""
    texts = [p.text for p in review.paragraphs]
    text = "\n\n".join(texts)
    if result.paragraphs is None:
        report = review.paragraphs[0].quality
        return result.model_copy(update={"text": text, "quality": report, "readability_grade": report.grade})
    paragraphs = [
        kept.model_copy(update={"text": p.text, "level": p.level, "quality": p.quality})
        for kept, p in zip(result.paragraphs, review.paragraphs, strict=True)
    ]
    report = quality.combine(check(source, text, result.grade_level), [p.quality for p in review.paragraphs])
    update = {"text": text, "paragraphs": paragraphs, "quality": report, "readability_grade": report.grade}
    return result.model_copy(update=update)
