"""Celery tasks: thin wrappers that parse a job, run it on this worker's runtime and store the outcome.

Start a worker with `celery -A worker.tasks worker --pool solo` (one job at a time per process).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready, worker_shutdown

import celeryconfig
from worker.celery_app import SIMPLIFY_TASK, app
from worker.errors import DynaquantError, JobCancelled
from worker.jobspec import parse_job
from worker.runtime import WorkerRuntime, get_runtime, shutdown_runtime

log = logging.getLogger(__name__)
CANCEL_CHECK_SECONDS = 0.25


@worker_ready.connect
def _start_runtime(sender: Any = None, **_: Any) -> None:
    name = getattr(sender, "hostname", None)
    get_runtime(name).start()


@worker_shutdown.connect
def _stop_runtime(**_: Any) -> None:
    shutdown_runtime()


def cancel_watch(runtime: WorkerRuntime, job_id: str) -> Callable[[], bool]:
    """A cheap check, polled during generation, that says whether the job was cancelled."""
    last = [0.0, False]

    def cancelled() -> bool:
        now = time.monotonic()
        if now - float(last[0]) >= CANCEL_CHECK_SECONDS:
            last[0], last[1] = now, runtime.store.status(job_id) == "cancelled"
        return bool(last[1])

    return cancelled


def run_job(runtime: WorkerRuntime, job_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run one job end to end and store its outcome once (a redelivered job is not stored twice)."""
    from worker.simplify import simplify_text as simplify

    state, attempt = runtime.store.start(job_id, runtime.name)
    if state != "running":
        return {"job_id": job_id, "status": state, "skipped": True}
    if attempt > celeryconfig.max_redeliveries + 1:
        message = (
            f"the job was started {attempt} times and its worker died each time (limit "
            f"{celeryconfig.max_redeliveries} redeliveries, DYNAQUANT_MAX_REDELIVERIES); it is not retried"
        )
        runtime.store.fail(job_id, "redelivery_limit", message)
        return {"job_id": job_id, "status": "failed", "error": message}
    runtime.begin_job(job_id)
    outcome: dict[str, Any] = {"job_id": job_id}
    try:
        spec = parse_job(payload)
        result = simplify(
            runtime.loader,
            spec.text,
            spec.grade_level,
            spec.subject,
            spec.request,
            model=spec.model,
            max_tokens=spec.max_tokens,
            should_stop=cancel_watch(runtime, job_id),
        )
        result["attempt"] = attempt
        if runtime.store.succeed(job_id, result) and result.get("reoptimized"):
            runtime.store.count_reoptimization()
        outcome.update(status="succeeded", result=result)
    except JobCancelled:
        outcome.update(status="cancelled")
    except SoftTimeLimitExceeded:
        message = f"the job ran past the {celeryconfig.task_time_limit} s limit (DYNAQUANT_TASK_TIME_LIMIT)"
        runtime.store.fail(job_id, "time_limit", message)
        outcome.update(status="failed", error=message)
    except DynaquantError as exc:
        runtime.store.fail(job_id, exc.code, str(exc))
        outcome.update(status="failed", error=str(exc))
    except Exception as exc:
        log.exception("job %s failed", job_id)
        runtime.store.fail(job_id, "internal_error", f"{type(exc).__name__}: {exc}")
        outcome.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    finally:
        runtime.end_job(job_summary(job_id, outcome))
    return outcome


def job_summary(job_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
    """The few facts of a finished job that the worker status shows."""
    result = outcome.get("result") or {}
    return {
        "job_id": job_id,
        "status": outcome.get("status"),
        "level": result.get("level"),
        "model": result.get("model"),
        "generation_seconds": result.get("generation_seconds"),
        "readability_grade": result.get("readability_grade"),
        "finished_at": time.time(),
    }


@app.task(name=SIMPLIFY_TASK, bind=True)
def simplify_text(self: Any, job_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Simplify one text at the level this worker's state calls for."""
    return run_job(get_runtime(self.request.hostname), job_id, payload)
