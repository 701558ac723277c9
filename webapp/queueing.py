"""Putting jobs on the Celery queue: flood control, record-before-send, and undo when the broker fails."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from flask import current_app

from webapp.errors import ApiError
from webapp.extensions import broker_url, current_settings, get_celery, get_redis, get_store, redacted_url
from worker import queues
from worker.celery_app import SIMPLIFY_TASK
from worker.contracts import JobSpec

log = logging.getLogger(__name__)


def queue_name() -> str:
    """The Celery queue jobs go to."""
    return current_settings().queue


def depth_by_priority() -> dict[int, int]:
    """Jobs waiting per priority step (0 runs first)."""
    return queues.queue_depth_by_priority(get_redis(), [queue_name()])


def queue_depth() -> int:
    """Jobs waiting in every priority list of the queue."""
    return sum(depth_by_priority().values())


def running() -> int:
    """Jobs taken by a worker and not yet finished."""
    return queues.jobs_running(get_redis())


def check_room(count: int) -> None:
    """Refuse (429) when adding `count` jobs would take the queue past DYNAQUANT_MAX_QUEUE."""
    settings = current_settings()
    limit = settings.max_queue
    depth = queue_depth()
    if depth + count > limit:
        retry = str(settings.retry_after_seconds)
        what = "this job was" if count == 1 else f"these {count} jobs were"
        raise ApiError(
            429,
            "queue_full",
            f"the queue holds {depth} jobs and takes at most {limit} (DYNAQUANT_MAX_QUEUE): {what} not "
            f"accepted; retry after {retry} s",
            None,
            {"Retry-After": retry},
            {"queue_depth": depth, "max_queue": limit},
        )


def _send(job_id: str, spec: JobSpec) -> None:
    get_celery().send_task(
        SIMPLIFY_TASK,
        args=[job_id, spec.model_dump(mode="json")],
        task_id=job_id,
        priority=spec.priority,
        queue=queue_name(),
        ignore_result=True,  # results live in the job records
    )


def _broker_down(exc: Exception) -> ApiError:
    log.warning("could not send a job to the broker: %s", exc)
    url = redacted_url(broker_url(current_app))
    return ApiError(
        503,
        "broker_unavailable",
        f"the job queue (broker at {url}) did not take the job: start Redis or check REDIS_URL, then retry; "
        "nothing was enqueued",
        None,
        {"Retry-After": str(current_settings().retry_after_seconds)},
    )


def enqueue(jobs: Sequence[tuple[str, JobSpec]], batch_id: str | None = None) -> None:
    """Record each job as queued, then send it; on a broker failure undo every job and answer 503."""
    store = get_store()
    created: list[str] = []
    try:
        for job_id, spec in jobs:
            store.create(job_id, spec, batch_id=batch_id)
            created.append(job_id)
        if batch_id is not None:
            store.create_batch(batch_id, [job_id for job_id, _ in jobs])
    except Exception:
        _undo(created, [])
        raise
    sent: list[str] = []
    try:
        for job_id, spec in jobs:
            _send(job_id, spec)
            sent.append(job_id)
    except Exception as exc:
        _undo([j for j in created if j not in set(sent)], sent)
        raise _broker_down(exc) from exc


def _undo(unsent: Sequence[str], sent: Sequence[str]) -> None:
    """Forget jobs that never reached the broker; cancel those that did (a worker skips them)."""
    store = get_store()
    for job_id in unsent:
        try:
            store.discard(job_id)
        except Exception as exc:  # Redis itself may be the failure
            log.warning("could not discard job %s: %s", job_id, exc)
    for job_id in sent:
        try:
            store.cancel(job_id)
        except Exception as exc:
            log.warning("could not cancel job %s after a partial batch: %s", job_id, exc)
