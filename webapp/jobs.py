"""Jobs and batches: submit, poll, list and cancel."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from pydantic import MISSING, BaseModel, Field

from webapp.apidoc import IdempotencyHeader, documented
from webapp.auth import token_required
from webapp.body import json_object
from webapp.catalog import parsed
from webapp.errors import ApiError
from webapp.extensions import get_celery, get_store
from webapp.idempotency import idempotency_key, release, settled
from webapp.queueing import admitted, enqueue
from worker.contracts import (
    REVIEW_STATES,
    TERMINAL,
    VERDICTS,
    BatchAccepted,
    BatchRecord,
    BatchRequest,
    Cancelled,
    JobAccepted,
    JobList,
    JobRecord,
    JobRequest,
    JobStatus,
    ReviewState,
    Verdict,
    parse_batch,
    parse_job,
)
from worker.jobs import RECENT_KEEP, new_id

bp = Blueprint("jobs", __name__, url_prefix="/api/v1")
log = logging.getLogger(__name__)

MAX_ID_LENGTH = 128
DIGITS = re.compile(r"[0-9]{1,6}")
REPLAYED = "Replay of an earlier request with this Idempotency-Key."


class ListQuery(BaseModel):
    """GET /jobs's query."""

    limit: int = Field(50, ge=1, le=RECENT_KEEP, description="how many jobs, newest first")
    verdict: Verdict | MISSING = Field(
        MISSING,
        description=f"only succeeded jobs whose quality verdict is this (pass or needs_review), among the latest "
        f"{RECENT_KEEP} jobs",
    )
    review_state: ReviewState | MISSING = Field(
        MISSING,
        description=f"only succeeded jobs whose review is in this state (unreviewed: no reviewer has decided "
        f"anything yet), among the latest {RECENT_KEEP} jobs",
    )


def _accepted(body: BaseModel, location: str, replayed: bool) -> ResponseReturnValue:
    response = jsonify(body.model_dump(mode="json"))
    response.status_code = 200 if replayed else 202
    response.headers["Location"] = location
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _job_answer(job_id: str, replayed: bool = False) -> ResponseReturnValue:
    status = JobStatus.QUEUED
    if replayed:
        job = settled(lambda: get_store().get(job_id))
        status = job.status if job else JobStatus.QUEUED
    url = url_for("jobs.get_job", job_id=job_id)
    return _accepted(JobAccepted(job_id=job_id, status_url=url, status=status), url, replayed)


def _batch_answer(batch_id: str, job_ids: list[str], replayed: bool = False) -> ResponseReturnValue:
    url = url_for("jobs.get_batch", batch_id=batch_id)
    body = BatchAccepted(batch_id=batch_id, job_ids=job_ids, status_url=url, status=JobStatus.QUEUED)
    return _accepted(body, url, replayed)


def _batch_job_ids(batch_id: str) -> list[str]:
    batch = settled(lambda: get_store().batch(batch_id))
    return [entry.job_id for entry in batch.jobs] if batch else []


def _queue_once(
    kind: str, count: int, send: Callable[[str], object], answer: Callable[[str, bool], ResponseReturnValue]
) -> ResponseReturnValue:
    """Queue `count` jobs under a new id, or answer with the first id again for a replayed Idempotency-Key."""
    store = get_store()
    key = idempotency_key(request.headers)
    scoped = f"{kind}:{key}" if key else None
    if scoped and (existing := store.lookup_idempotency(scoped)):
        return answer(existing, True)
    with admitted(count):
        ident = new_id()
        if scoped and (bound := store.remember_idempotency(scoped, ident)) != ident:
            return answer(bound, True)
        try:
            send(ident)
        except Exception:
            if scoped:
                release(scoped, ident)
            raise
    return answer(ident, False)


def submission(operation: str, body: type[BaseModel], accepted: type[BaseModel], queued: str) -> Any:
    """Document a submitting view: its body, the Idempotency-Key header, 202 (or 200 on a replay) and its errors."""
    answers = {"HTTP_202": (accepted, queued), "HTTP_200": (accepted, REPLAYED)}
    inputs: dict[str, type[BaseModel]] = {"json": body, "headers": IdempotencyHeader}
    return documented(operation, (400, 413, 415, 429), guarded=True, inputs=inputs, **answers)


@bp.post("/jobs")
@submission("submitJob", JobRequest, JobAccepted, "Queued.")
@token_required
def submit_job() -> ResponseReturnValue:
    """Queue one simplification job at its priority: 202 with its id and where to poll it."""
    spec = parsed(parse_job, json_object())
    return _queue_once("job", 1, lambda job_id: enqueue([(job_id, spec)]), _job_answer)


@bp.post("/batches")
@submission("submitBatch", BatchRequest, BatchAccepted, "All items queued.")
@token_required
def submit_batch() -> ResponseReturnValue:
    """Queue many jobs at once, all or none: every item is checked before any is queued."""
    jobs = [(new_id(), spec) for spec in parsed(parse_batch, json_object())]

    def answer(batch_id: str, replayed: bool) -> ResponseReturnValue:
        job_ids = _batch_job_ids(batch_id) if replayed else [job_id for job_id, _ in jobs]
        return _batch_answer(batch_id, job_ids, replayed)

    return _queue_once("batch", len(jobs), lambda batch_id: enqueue(jobs, batch_id=batch_id), answer)


def not_found(kind: str, ident: str) -> ApiError:
    """404 naming the unknown id (cut short when it is very long)."""
    shown = ident if len(ident) <= MAX_ID_LENGTH else ident[:MAX_ID_LENGTH] + "..."
    return ApiError(404, "not_found", f"no {kind} with id {shown!r} (never issued, or expired)", f"{kind}_id")


def _record(kind: str, ident: str, read: Callable[[str], BaseModel | None]) -> ResponseReturnValue:
    """A job's or batch's record as JSON, or 404 naming the id."""
    record = read(ident) if len(ident) <= MAX_ID_LENGTH else None
    if record is None:
        raise not_found(kind, ident)
    return jsonify(record.model_dump(mode="json"))


@bp.get("/jobs/<job_id>")
@documented("getJob", (404, 414), HTTP_200=(JobRecord, "The job."))
def get_job(job_id: str) -> ResponseReturnValue:
    """A job's status, request, result or error, and timestamps."""
    return _record("job", job_id, get_store().get)


def _one_value(name: str, default: str) -> str:
    """A query parameter's value (given twice: both, comma-joined, so the error shows what came)."""
    given = request.args.getlist(name)
    return given[0] if len(given) == 1 else (default if not given else ",".join(given))


def _choice(name: str, allowed: tuple[str, ...]) -> str | None:
    """A query parameter that must be one of `allowed` (None when not given); 400 naming it otherwise."""
    if name not in request.args:
        return None
    value = _one_value(name, "")
    if value not in allowed:
        raise ApiError(400, "invalid_input", f"{name}: must be one of {', '.join(allowed)}, got {value!r}", name)
    return value


@bp.get("/jobs")
@documented("listJobs", (400, 414), inputs={"query": ListQuery}, HTTP_200=(JobList, "Jobs."))
def list_jobs() -> ResponseReturnValue:
    """The latest jobs, newest first; `verdict` and `review_state` keep the succeeded jobs they name."""
    raw = _one_value("limit", "50")
    if not DIGITS.fullmatch(raw) or not 1 <= int(raw) <= RECENT_KEEP:
        raise ApiError(400, "invalid_input", f"limit: must be an integer from 1 to {RECENT_KEEP}, got {raw!r}", "limit")
    verdict = _choice("verdict", VERDICTS)
    review_state = _choice("review_state", REVIEW_STATES)
    jobs = get_store().recent(int(raw), verdict, review_state)
    return jsonify(JobList(jobs=jobs, count=len(jobs)).model_dump(mode="json"))


@bp.delete("/jobs/<job_id>")
@documented("cancelJob", (404, 409, 414), guarded=True, HTTP_200=(Cancelled, "Cancelled."))
@token_required
def cancel_job(job_id: str) -> ResponseReturnValue:
    """Cancel a queued or running job; 409 when it already ended (cancelled included)."""
    store = get_store()
    before = store.status(job_id) if len(job_id) <= MAX_ID_LENGTH else None
    if before is None:
        raise not_found("job", job_id)
    # The store's cancel answers "cancelled" for a job cancelled earlier too, so look first.
    outcome = before if before in TERMINAL else store.cancel(job_id)
    if outcome == "missing":  # expired in between
        raise not_found("job", job_id)
    if before in TERMINAL or outcome != JobStatus.CANCELLED:
        raise ApiError(
            409,
            "already_finished",
            f"job {job_id} already {outcome}; only a queued or running job can be cancelled",
            None,
            extra={"job_id": job_id, "status": outcome},
        )
    try:
        get_celery().control.revoke(job_id)
    except Exception as exc:  # best effort: workers also skip a job whose record says cancelled
        log.warning("could not revoke job %s: %s", job_id, exc)
    return jsonify(Cancelled(job_id=job_id, status=JobStatus.CANCELLED).model_dump(mode="json"))


@bp.get("/batches/<batch_id>")
@documented("getBatch", (404, 414), HTTP_200=(BatchRecord, "The batch."))
def get_batch(batch_id: str) -> ResponseReturnValue:
    """Counts by status and each job's status (and result once done)."""
    return _record("batch", batch_id, get_store().batch)
