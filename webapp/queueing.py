"""Putting jobs on the Celery queue: flood control, record-before-send, and undo when the broker fails.

The queue limit is exact: admission is one Lua script that counts the jobs waiting in every priority
list plus the slots other requests have reserved and are still sending, and reserves this request's
slots only if all of them fit. A reservation is dropped once its jobs are sent (or expires, if the web
process died while sending), so a flood of concurrent requests can never take the queue past the limit.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

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


def running() -> int:
    """Jobs taken by a worker and not yet finished."""
    return queues.jobs_running(get_redis())


RESERVATIONS_KEY = "dq:queue:{}:reservations"
RESERVATION_SECONDS = 120
"""A reservation left by a web process that died while sending expires after this long."""

# KEYS: the queue's priority lists, then its reservations (a sorted set of "<id>:<count>" by expiry).
# ARGV: jobs wanted, the limit, now, this reservation's id, its lifetime. Answers {admitted, depth, reserved}.
_ADMIT = """
local reservations = KEYS[#KEYS]
redis.call('ZREMRANGEBYSCORE', reservations, '-inf', ARGV[3])
local depth = 0
for i = 1, #KEYS - 1 do depth = depth + redis.call('LLEN', KEYS[i]) end
local reserved = 0
for _, member in ipairs(redis.call('ZRANGE', reservations, 0, -1)) do
  reserved = reserved + tonumber(string.match(member, ':(%d+)$'))
end
if depth + reserved + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return {0, depth, reserved} end
redis.call('ZADD', reservations, tonumber(ARGV[3]) + tonumber(ARGV[5]), ARGV[4] .. ':' .. ARGV[1])
return {1, depth, reserved}
"""


def _queue_full(depth: int, count: int, limit: int) -> ApiError:
    retry = str(current_settings().retry_after_seconds)
    what = "this job was" if count == 1 else f"these {count} jobs were"
    return ApiError(
        429,
        "queue_full",
        f"the queue holds {depth} jobs and takes at most {limit} (DYNAQUANT_MAX_QUEUE): {what} not "
        f"accepted; retry after {retry} s",
        None,
        {"Retry-After": retry},
        {"queue_depth": depth, "max_queue": limit},
    )


@contextmanager
def admitted(count: int) -> Iterator[None]:
    """Reserve room for `count` jobs under DYNAQUANT_MAX_QUEUE for the block (429 when it is not there)."""
    limit = current_settings().max_queue
    client = get_redis()
    reservations = RESERVATIONS_KEY.format(queue_name())
    keys = [*queues.priority_queue_names(queue_name()), reservations]
    token = uuid.uuid4().hex
    answer = client.register_script(_ADMIT)(keys=keys, args=[count, limit, time.time(), token, RESERVATION_SECONDS])
    ok, depth, reserved = (int(value) for value in answer)
    if not ok:
        raise _queue_full(depth + reserved, count, limit)
    try:
        yield
    finally:
        try:
            client.zrem(reservations, f"{token}:{count}")
        except Exception as exc:  # it expires by itself
            log.warning("could not drop a queue reservation: %s", exc)


def _send(job_id: str, spec: JobSpec) -> None:
    """Put a recorded job on its priority's queue."""
    get_celery().send_task(
        SIMPLIFY_TASK,
        args=[job_id],  # the job is in its record, written before the send: the message carries its id only
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
