"""Review of finished jobs: the review page, its API (view, actions), the reviewed document's export and the
reviewers' labels."""

from __future__ import annotations

import re
import time
from typing import Literal

from flask import Blueprint, make_response, render_template, request, url_for
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, Field

from webapp.apidoc import documented
from webapp.auth import token_required
from webapp.body import json_object
from webapp.dashboard import secured
from webapp.errors import ApiError
from webapp.extensions import current_settings, get_redis, get_store
from webapp.jobs import MAX_ID_LENGTH, not_found
from webapp.queueing import admitted, enqueue
from worker import marks, review
from worker.contracts import (
    PROFILE_FILTER,
    AttemptRecord,
    Document,
    JobRecord,
    JobResult,
    JobReview,
    JobSpec,
    JobStatus,
    ParagraphReview,
    ParagraphView,
    ReviewAnswer,
    ReviewLabels,
    ReviewRequest,
    ReviewView,
    validated,
)
from worker.document import paragraphs
from worker.jobs import new_id
from worker.labels import read_labels, record_labels

bp = Blueprint("review", __name__)

MARKDOWN_START = re.compile(r"^([#>*+\-=|]|\d+[.)])")
"""A paragraph opening with one of these would read as Markdown syntax (a heading, a list, a quote)."""


class ExportQuery(BaseModel):
    """GET /jobs/<id>/export's query."""

    format: Literal["md", "txt"] = Field("md", description="md (Markdown, with a title) or txt (plain text)")


class LabelsQuery(BaseModel):
    """GET /reviews/labels's query."""

    model: str | None = Field(None, pattern=PROFILE_FILTER, description="only this model's labels")


def reviewable(job_id: str) -> JobRecord:
    """A succeeded job's record, or 404 (unknown) or 409 (not succeeded: nothing to review yet)."""
    job = get_store().get(job_id) if len(job_id) <= MAX_ID_LENGTH else None
    if job is None:
        raise not_found("job", job_id)
    if job.status != JobStatus.SUCCEEDED or job.result is None or job.request is None:
        raise ApiError(
            409,
            "not_succeeded",
            f"job {job_id} is {job.status}: only a succeeded job has a text to review or export",
            "job_id",
            extra={"job_id": job_id, "status": job.status},
        )
    return job


def spec_of(job: JobRecord) -> JobSpec:
    """The job's request (reviewable() makes sure it has one)."""
    assert job.request is not None
    return job.request


def result_of(job: JobRecord) -> JobResult:
    """The job's result (reviewable() makes sure it has one)."""
    assert job.result is not None
    return job.result


def current_review(job: JobRecord, sources: list[str]) -> JobReview:
    """The job's review, or a new one with every paragraph unreviewed."""
    return job.review or review.begin(result_of(job), sources, time.time())


def drafts_of(job: JobRecord, p: ParagraphReview) -> list[AttemptRecord]:
    """The drafts behind a paragraph's text: the job's for it, or, once a new draft was taken, that redraft's."""
    taken = [a.redraft_job for a in (job.review.actions if job.review else []) if a.action == "use_redraft"
             and a.paragraph == p.index and a.redraft_job]  # fmt: skip
    redraft = get_store().get(taken[-1]) if p.state == "redrafted" and taken else None
    if redraft is not None and redraft.result is not None:
        return redraft.result.attempts
    result = result_of(job)
    return [a for a in result.attempts if result.paragraphs is None or a.paragraph == p.index]


def paragraph_view(job: JobRecord, p: ParagraphReview, source: str) -> ParagraphView:
    """A paragraph with its findings marked in its text and in its source."""
    attempts = drafts_of(job, p)
    return ParagraphView(
        **p.model_dump(),
        source=source,
        source_marks=marks.source_marks(source, p.quality),
        marks=marks.result_marks(p.text, p.quality),
        attempts=attempts,
    )


@bp.get("/api/v1/jobs/<job_id>/review")
@documented("getReview", (404, 409, 414), HTTP_200=(ReviewView, "The job's paragraphs and their review."))
def get_review(job_id: str) -> ResponseReturnValue:
    """A succeeded job's paragraphs beside their sources, the checker's findings marked, and its review."""
    job = reviewable(job_id)
    spec, result = spec_of(job), result_of(job)
    sources = paragraphs(spec.text)
    state = current_review(job, sources)
    view = ReviewView(
        job_id=job.job_id,
        model=result.model,
        subject=spec.subject,
        grade_level=spec.grade_level,
        priority=spec.priority,
        level=result.level,
        review_state=state.state,
        grade_tolerance=review.GRADE_TOLERANCE,
        updated_at=job.review.updated_at if job.review else None,
        paragraphs=[paragraph_view(job, p, sources[p.index - 1]) for p in state.paragraphs],
        actions=state.actions,
    )
    return view.model_dump(mode="json")


def queue_redraft(job: JobRecord, asked: ReviewRequest, p: ParagraphReview, source: str) -> str:
    """Queue a new draft of one paragraph at the job's priority; its job id."""
    pending = get_store().status(p.redraft_job) if p.redraft_job else None
    if pending is not None and pending not in (JobStatus.FAILED, JobStatus.CANCELLED):
        what = "is done: take it with use_redraft" if pending == JobStatus.SUCCEEDED else f"is {pending}: wait for it"
        raise ApiError(409, "redraft_pending", f"a new draft of paragraph {p.index} is already asked for (job "
                       f"{p.redraft_job}) and {what}", "paragraph")  # fmt: skip
    spec = spec_of(job)
    level = review.redraft_level(p, asked.level)
    redraft = spec.model_copy(update={"text": source, "force_quantization": level, "min_quantization": None})
    redraft_id = new_id()
    with admitted(1):
        enqueue([(redraft_id, redraft)])
    return redraft_id


def finished_redraft(p: ParagraphReview) -> review.Draft:
    """The new draft of a paragraph, once its job succeeded; 409 saying what to do otherwise."""
    job = get_store().get(p.redraft_job) if p.redraft_job else None
    if job is None or p.redraft_job is None:
        message = f"paragraph {p.index} has no new draft: ask for one with redraft"
        raise ApiError(409, "no_redraft", message, "paragraph")
    if job.status != JobStatus.SUCCEEDED or job.result is None or job.result.quality is None:
        what = "is still " + job.status if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED) else job.status
        raise ApiError(409, "redraft_not_ready", f"the new draft of paragraph {p.index} (job {job.job_id}) {what}: "
                       "wait for it, or ask again with redraft", "paragraph")  # fmt: skip
    result, report = job.result, job.result.quality
    return review.Draft(result.text, result.output_level or result.level, report)


@bp.post("/api/v1/jobs/<job_id>/review")
@documented(
    "reviewJob",
    (400, 404, 409, 413, 414, 415, 429),
    guarded=True,
    inputs={"json": ReviewRequest},
    HTTP_200=(ReviewAnswer, "The action is stored."),
    HTTP_202=(ReviewAnswer, "A new draft is queued (redraft)."),
)
@token_required
def post_review(job_id: str) -> ResponseReturnValue:
    """Accept, edit or ask again for one paragraph (or accept the whole job); stored on the job with who and when."""
    asked = validated(ReviewRequest, json_object())
    job = reviewable(job_id)
    spec = spec_of(job)
    sources = paragraphs(spec.text)
    asked = review.checked_request(asked, current_settings().max_text_chars)
    paragraph = review.target(current_review(job, sources), asked)
    redraft = finished_redraft(paragraph) if paragraph and asked.action == "use_redraft" else None
    redraft_job = None
    if paragraph is not None and asked.action == "redraft":
        redraft_job = queue_redraft(job, asked, paragraph, sources[paragraph.index - 1])
    labels: list[review.HumanLabel] = []

    def change(record: JobRecord) -> tuple[JobReview, JobResult]:
        now = time.time()
        before = current_review(record, sources)
        try:
            after, found = review.apply(before, asked, sources, spec.grade_level, now, redraft, redraft_job)
        except review.ReviewConflict as exc:
            raise ApiError(409, "review_conflict", str(exc), exc.field) from None
        labels[:] = found
        return after, review.reviewed_result(result_of(record), after, spec.text)

    try:
        record = get_store().change_review(job_id, change)
    except KeyError:
        raise not_found("job", job_id) from None
    ttl = int(current_settings().profile_ttl_days * 86400)
    record_labels(get_redis(), job_id, result_of(record), labels, sources, ttl)
    assert record.review is not None
    changed = record.review.paragraphs[paragraph.index - 1] if paragraph else None
    answer = ReviewAnswer(
        job_id=job_id,
        review_state=record.review.state,
        paragraph=changed,
        redraft_job=redraft_job,
        status_url=url_for("jobs.get_job", job_id=redraft_job) if redraft_job else None,
    )
    return answer.model_dump(mode="json"), 202 if redraft_job else 200


def markdown_paragraph(text: str) -> str:
    """A paragraph that reads as text in Markdown (a leading '#', '-' or '1.' escaped)."""
    return "\\" + text if MARKDOWN_START.match(text) else text


@bp.get("/api/v1/jobs/<job_id>/export")
@documented(
    "exportJob",
    (400, 404, 409, 414),
    inputs={"query": ExportQuery},
    HTTP_200=(Document, "The document: text/markdown or text/plain."),
)
def export_job(job_id: str) -> ResponseReturnValue:
    """A succeeded job's text as it stands after review, paragraphs in order, as Markdown or plain text."""
    given = request.args.get("format")
    fmt = validated(ExportQuery, {} if given is None else {"format": given}).format
    job = reviewable(job_id)
    spec = spec_of(job)
    texts = [p.text for p in current_review(job, paragraphs(spec.text)).paragraphs]
    if fmt == "md":
        title = f"# {spec.subject}, simplified for grade {spec.grade_level}"
        body = "\n\n".join([title, *(markdown_paragraph(t) for t in texts)]) + "\n"
    else:
        body = "\n\n".join(texts) + "\n"
    response = make_response(body)
    response.mimetype = "text/markdown" if fmt == "md" else "text/plain"
    response.headers["Content-Disposition"] = f'attachment; filename="{job_id}.{fmt}"'
    return response


@bp.get("/api/v1/reviews/labels")
@documented("reviewLabels", (400,), inputs={"query": LabelsQuery}, HTTP_200=(ReviewLabels, "The labels."))
def review_labels() -> ResponseReturnValue:
    """Every reviewer verdict kept, oldest first, as rows of the checker's hand-label files (with the source)."""
    rows = read_labels(get_redis(), validated(LabelsQuery, {"model": request.args.get("model")}).model)
    return ReviewLabels(labels=rows, count=len(rows)).model_dump(mode="json")


@bp.get("/jobs/<job_id>/review")
def review_page(job_id: str) -> ResponseReturnValue:
    """The review page of one job: its scripts read and write the review through the API."""
    return secured(render_template("review.html", job_id=job_id[:MAX_ID_LENGTH]))
