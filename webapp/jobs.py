"""Jobs and batches: submit, poll, list and cancel."""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, current_app, jsonify, request, url_for
from flask.typing import ResponseReturnValue

from webapp.auth import token_required
from webapp.body import json_object
from webapp.catalog import known_models
from webapp.errors import ApiError
from webapp.extensions import get_celery, get_redis, get_store
from webapp.idempotency import idempotency_key, release, settled
from webapp.queueing import admitted, enqueue
from webapp.validation import parse_batch, parse_one
from worker.jobs import RECENT_KEEP, TERMINAL, new_id
from worker.status import live_workers

bp = Blueprint("jobs", __name__, url_prefix="/api/v1")
log = logging.getLogger(__name__)

MAX_ID_LENGTH = 128
DIGITS = re.compile(r"[0-9]{1,6}")


def _known_models() -> list[str]:
    return known_models(live_workers(get_redis()), current_app.config.get("MODELS_FILE"))


def _job_url(job_id: str) -> str:
    return url_for("jobs.get_job", job_id=job_id)


def _batch_url(batch_id: str) -> str:
    return url_for("jobs.get_batch", batch_id=batch_id)


def _accepted(body: dict[str, Any], location: str, replayed: bool) -> ResponseReturnValue:
    response = jsonify(body)
    response.status_code = 200 if replayed else 202
    response.headers["Location"] = location
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _job_answer(job_id: str, replayed: bool = False) -> ResponseReturnValue:
    status = "queued"
    if replayed:
        job = settled(lambda: get_store().get(job_id))
        status = job["status"] if job else "queued"
    body = {"job_id": job_id, "status_url": _job_url(job_id), "status": status}
    return _accepted(body, _job_url(job_id), replayed)


def _batch_answer(batch_id: str, job_ids: list[str], replayed: bool = False) -> ResponseReturnValue:
    body = {"batch_id": batch_id, "job_ids": job_ids, "status_url": _batch_url(batch_id), "status": "queued"}
    return _accepted(body, _batch_url(batch_id), replayed)


def _batch_job_ids(batch_id: str) -> list[str]:
    batch = settled(lambda: get_store().batch(batch_id))
    return [entry["job_id"] for entry in batch["jobs"]] if batch else []


@bp.post("/jobs")
@token_required
def submit_job() -> ResponseReturnValue:
    """Validate one job and queue it at its priority; 202 with its id and where to poll it."""
    spec = parse_one(json_object(), _known_models())
    store = get_store()
    key = idempotency_key(request.headers)
    scoped = f"job:{key}" if key else None
    if scoped and (existing := store.lookup_idempotency(scoped)):
        return _job_answer(existing, replayed=True)
    with admitted(1):
        job_id = new_id()
        if scoped and (bound := store.remember_idempotency(scoped, job_id)) != job_id:
            return _job_answer(bound, replayed=True)
        try:
            enqueue([(job_id, spec)])
        except Exception:
            if scoped:
                release(scoped, job_id)
            raise
    return _job_answer(job_id)


@bp.post("/batches")
@token_required
def submit_batch() -> ResponseReturnValue:
    """Validate every item, then queue them all (or none); 202 with the batch id and job ids."""
    specs = parse_batch(json_object(), _known_models(), int(current_app.config["MAX_BATCH"]))
    store = get_store()
    key = idempotency_key(request.headers)
    scoped = f"batch:{key}" if key else None
    if scoped and (existing := store.lookup_idempotency(scoped)):
        return _batch_answer(existing, _batch_job_ids(existing), replayed=True)
    with admitted(len(specs)):
        batch_id = new_id()
        if scoped and (bound := store.remember_idempotency(scoped, batch_id)) != batch_id:
            return _batch_answer(bound, _batch_job_ids(bound), replayed=True)
        jobs = [(new_id(), spec) for spec in specs]
        try:
            enqueue(jobs, batch_id=batch_id)
        except Exception:
            if scoped:
                release(scoped, batch_id)
            raise
    return _batch_answer(batch_id, [job_id for job_id, _ in jobs])


def _not_found(kind: str, ident: str) -> ApiError:
    shown = ident if len(ident) <= MAX_ID_LENGTH else ident[:MAX_ID_LENGTH] + "..."
    return ApiError(404, "not_found", f"no {kind} with id {shown!r} (never issued, or expired)", f"{kind}_id")


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> ResponseReturnValue:
    """One job: its status, request, result or error, and timestamps."""
    job = get_store().get(job_id) if len(job_id) <= MAX_ID_LENGTH else None
    if job is None:
        raise _not_found("job", job_id)
    return jsonify(job)


@bp.get("/jobs")
def list_jobs() -> ResponseReturnValue:
    """The latest jobs, newest first (?limit=1..500, default 50)."""
    given = request.args.getlist("limit")
    raw = given[0] if len(given) == 1 else ("50" if not given else ",".join(given))
    if not DIGITS.fullmatch(raw) or not 1 <= int(raw) <= RECENT_KEEP:
        raise ApiError(400, "invalid_input", f"limit: must be an integer from 1 to {RECENT_KEEP}, got {raw!r}", "limit")
    jobs = get_store().recent(int(raw))
    return jsonify({"jobs": jobs, "count": len(jobs)})


@bp.delete("/jobs/<job_id>")
@token_required
def cancel_job(job_id: str) -> ResponseReturnValue:
    """Cancel a queued or running job; 409 when it already ended (cancelled included)."""
    store = get_store()
    before = store.status(job_id) if len(job_id) <= MAX_ID_LENGTH else None
    if before is None:
        raise _not_found("job", job_id)
    # The store's cancel answers "cancelled" for a job cancelled earlier too, so look first.
    outcome = before if before in TERMINAL else store.cancel(job_id)
    if outcome == "missing":  # expired in between
        raise _not_found("job", job_id)
    if before in TERMINAL or outcome != "cancelled":
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
    return jsonify({"job_id": job_id, "status": "cancelled"})


@bp.get("/batches/<batch_id>")
def get_batch(batch_id: str) -> ResponseReturnValue:
    """A batch: counts by status and each job's status (and result once done)."""
    batch = get_store().batch(batch_id) if len(batch_id) <= MAX_ID_LENGTH else None
    if batch is None:
        raise _not_found("batch", batch_id)
    return jsonify(batch)
