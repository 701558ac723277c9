"""Celery tasks: thin wrappers that parse a job, run it on this worker's runtime and store the outcome.

Start a worker with `celery -A worker.tasks worker --pool solo` (one job at a time per process).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from celery.signals import worker_ready, worker_shutdown

from worker.celery_app import SIMPLIFY_TASK, app
from worker.contracts import JobResult, JobSpec, JobSummary, check_limits, validated
from worker.errors import DynaquantError, JobCancelled
from worker.runtime import WorkerRuntime, get_runtime, shutdown_runtime

log = logging.getLogger(__name__)
CANCEL_CHECK_SECONDS = 0.25
STORE_RETRY_MAX_SECONDS = 5.0
T = TypeVar("T")


@worker_ready.connect
def _start_runtime(sender: Any = None, **_: Any) -> None:
    name = getattr(sender, "hostname", None)
    get_runtime(name).start()


@worker_shutdown.connect
def _stop_runtime(**_: Any) -> None:
    shutdown_runtime()


def persist(what: str, call: Callable[[], T]) -> T:
    """Run a Redis write of a job's state, retrying while Redis is unreachable (restarting, loading, failing over).

    A job's outcome is never dropped because Redis blinked: the worker holds it until Redis takes it.
    """
    delay = 0.5
    while True:
        try:
            return call()
        except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError) as exc:
            log.warning("could not %s: Redis unreachable (%s); retrying in %.1f s", what, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, STORE_RETRY_MAX_SECONDS)


class JobWatch:
    """Polled during generation: stops a job that was cancelled or that ran past DYNAQUANT_TASK_TIME_LIMIT."""

    def __init__(self, runtime: WorkerRuntime, job_id: str, seconds: float) -> None:
        self.runtime = runtime
        self.job_id = job_id
        self.deadline = time.monotonic() + seconds
        self.timed_out = False
        self._checked_at = 0.0
        self._cancelled = False

    def __call__(self) -> bool:
        """True once the job must stop; a Redis outage reads as "not cancelled" (the job goes on)."""
        now = time.monotonic()
        if now >= self.deadline:
            self.timed_out = True
            return True
        if now - self._checked_at >= CANCEL_CHECK_SECONDS:
            self._checked_at = now
            try:
                self._cancelled = self.runtime.store.status(self.job_id) == "cancelled"
            except redis.RedisError as exc:
                log.warning("could not check job %s for cancellation: %s", self.job_id, exc)
        return self._cancelled


def time_limit_message(seconds: int) -> str:
    """The error of a job stopped at its time limit."""
    return f"the job ran past the {seconds} s limit (DYNAQUANT_TASK_TIME_LIMIT) and was stopped"


def run_job(
    runtime: WorkerRuntime, job_id: str, payload: dict[str, Any] | None = None, delivery_tag: str = ""
) -> dict[str, Any]:
    """Run one job end to end and store its outcome once (a redelivered job is not stored twice).

    Returns status "deferred" when a live worker still runs the job (a redelivery after the
    visibility timeout): the caller re-queues it for later instead of running it a second time. The job is read
    from its record; a `payload` (a message of an older web app) is checked instead.
    """
    store, settings = runtime.store, runtime.settings
    state, attempt = persist(
        f"start job {job_id}", lambda: store.start(job_id, runtime.name, settings.heartbeat_ttl, delivery_tag)
    )
    if state == "busy":
        return {"job_id": job_id, "status": "deferred", "held_by": store.lease_holder(job_id)}
    if state != "running":
        return {"job_id": job_id, "status": state, "skipped": True}
    try:
        if attempt > settings.max_redeliveries + 1:
            message = (
                f"the job's worker died {attempt - 1} times while running it, past the limit of "
                f"{settings.max_redeliveries} redeliveries (DYNAQUANT_MAX_REDELIVERIES); it is not run again"
            )
            persist(f"store job {job_id}", lambda: store.fail(job_id, "redelivery_limit", message))
            return {"job_id": job_id, "status": "failed", "error": message}
        return execute(runtime, job_id, payload, attempt)
    finally:
        try:
            store.release_lease(job_id)
        except redis.RedisError as exc:  # it runs out by itself
            log.warning("could not release the lease of job %s: %s", job_id, exc)


def execute(runtime: WorkerRuntime, job_id: str, payload: dict[str, Any] | None, attempt: int) -> dict[str, Any]:
    """Generate a started job's text and store its result or error, holding it until Redis takes it."""
    from worker.simplify import simplify_text as simplify

    store, limit = runtime.store, runtime.settings.task_time_limit
    runtime.begin_job(job_id)
    watch = JobWatch(runtime, job_id, limit)
    outcome: dict[str, Any] = {"job_id": job_id}
    result: JobResult | None = None
    error: tuple[str, str] | None = None
    try:
        spec = validated(JobSpec, payload) if payload is not None else store.spec(job_id)
        check_limits(spec, runtime.settings.job_limits())  # this worker's limits (no parse)
        ceiling = persist(f"read the ceiling of job {job_id}", lambda: runtime.ceiling_for(job_id, spec.model))
        done = simplify(runtime.loader, spec, watch, budget=runtime.retry_budget, ceiling=ceiling)
        where = {"host": runtime.profiles.host, "device": runtime.profiles.device}
        result = done = done.model_copy(update={"attempt": attempt, **where})
        if persist(f"store job {job_id}", lambda: store.succeed(job_id, done)) and done.reoptimized:
            persist("count a re-optimisation", store.count_reoptimization)
        runtime.job_stored(spec, done)
        outcome.update(status="succeeded", result=done.model_dump(mode="json"))
    except JobCancelled:
        if watch.timed_out:
            error = ("time_limit", time_limit_message(limit))
        else:
            outcome.update(status="cancelled")
    except DynaquantError as exc:
        error = (exc.code, str(exc))
    except Exception as exc:
        log.exception("job %s failed", job_id)
        error = ("internal_error", f"{type(exc).__name__}: {exc}")
    finally:
        if error is not None:
            code, message = error
            persist(f"store job {job_id}", lambda: store.fail(job_id, code, message))
            outcome.update(status="failed", error=message)
        runtime.end_job(job_summary(job_id, str(outcome.get("status")), result))
    return outcome


def job_summary(job_id: str, status: str, result: JobResult | None) -> JobSummary:
    """The few facts of a finished job that the worker status shows."""
    facts = result.model_dump(include={"level", "model", "generation_seconds", "readability_grade"}) if result else {}
    return JobSummary(job_id=job_id, status=status, finished_at=time.time(), **facts)


@app.task(name=SIMPLIFY_TASK, bind=True, max_retries=None)  # None: deferring never gives up on a job
def simplify_text(self: Any, job_id: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """Simplify one text at the level this worker's state calls for."""
    runtime = get_runtime(self.request.hostname)
    tag = str((getattr(self.request, "properties", None) or {}).get("delivery_tag") or "")
    outcome = run_job(runtime, job_id, payload, tag)
    if outcome["status"] == "deferred":
        # Another live worker runs this job: look again once its lease could have run out.
        log.info("job %s is running on %s; deferred, not run twice", job_id, outcome.get("held_by"))
        raise self.retry(countdown=runtime.settings.heartbeat_ttl)
    return brief(outcome)


def brief(outcome: dict[str, Any]) -> dict[str, Any]:
    """What the Celery task returns: the job, its status, level and error, not the result (it is in the job's
    record). Celery formats the return value into its log line and the task-succeeded event of every job."""
    kept: dict[str, Any] = {k: outcome[k] for k in ("job_id", "status", "error", "skipped") if k in outcome}
    if "result" in outcome:
        kept["level"] = outcome["result"].get("level")
    return kept
