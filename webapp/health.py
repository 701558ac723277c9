"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import redis
from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST

from webapp.aggregate import NO_WORKERS_MESSAGE
from webapp.apidoc import documented
from webapp.errors import ApiError, error_response, redis_unreachable_message
from webapp.extensions import current_settings, get_redis
from webapp.metrics import exposition
from worker import service_state
from worker.contracts import Check, Health, Ready
from worker.status import live_workers

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@documented("healthz", HTTP_200=(Health, "Up."))
def healthz() -> ResponseReturnValue:
    """The process is up (says nothing of Redis or workers)."""
    return jsonify(Health(status="ok").model_dump())


@bp.get("/readyz")
@documented("readyz", HTTP_200=(Ready, "Ready, or degraded: a supervised process is down."))
def readyz() -> ResponseReturnValue:
    """200 when Redis answers and at least one worker is alive, "degraded" when a supervised process is down;
    else 503 saying which is missing."""
    try:
        get_redis().ping()
        workers = live_workers(get_redis())
        service = service_state.summary(get_redis())
        checks = {
            "redis": Check(ok=True, message=None),
            "workers": Check(ok=bool(workers), count=len(workers), message=None if workers else NO_WORKERS_MESSAGE),
            "processes": Check(ok=not service.degraded, message="; ".join(service.messages) or None, required=False),
        }
    except redis.RedisError:
        checks = {
            "redis": Check(ok=False, message=redis_unreachable_message()),
            "workers": Check(ok=False, message="unknown while Redis is unreachable"),
        }
    failing = [check for check in checks.values() if check.required and not check.ok]
    if not failing:
        degraded = not all(check.ok for check in checks.values())
        return jsonify(Ready(status="degraded" if degraded else "ready", checks=checks).model_dump())
    message = "; ".join(str(check.message) for check in failing)
    extra = {"status": "not_ready", "checks": {name: check.model_dump() for name, check in checks.items()}}
    retry = {"Retry-After": str(current_settings().retry_after_seconds)}
    return error_response(ApiError(503, "not_ready", f"not ready: {message}", None, retry, extra))


@bp.get("/metrics")
@documented("metrics", HTTP_200=(None, "Prometheus text format."))
def metrics() -> ResponseReturnValue:
    """Queue depth, jobs, levels, cache, re-optimisations and latency, in the Prometheus text format."""
    body = exposition(get_redis(), current_settings().queue)
    return Response(body, status=200, content_type=CONTENT_TYPE_LATEST)
