"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

import redis
from flask import Blueprint, Response, current_app, jsonify
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST

from webapp.aggregate import NO_WORKERS_MESSAGE
from webapp.errors import error_response, redis_unreachable_message
from webapp.extensions import get_redis
from webapp.metrics import exposition
from worker import service_state
from worker.status import live_workers

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """The process is up (says nothing of Redis or workers)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """200 when Redis answers and at least one worker is alive ("degraded" when a supervised process is down);
    else 503 saying which is missing."""
    checks: dict[str, Any] = {}
    try:
        get_redis().ping()
        workers = live_workers(get_redis())
        checks["redis"] = {"ok": True, "message": None}
        message = None if workers else NO_WORKERS_MESSAGE
        checks["workers"] = {"ok": bool(workers), "count": len(workers), "message": message}
        supervision = service_state.summary(service_state.live_supervisors(get_redis()))
        problems = "; ".join(supervision["messages"]) or None
        checks["processes"] = {"ok": not supervision["degraded"], "required": False, "message": problems}
    except redis.RedisError:
        checks["redis"] = {"ok": False, "message": redis_unreachable_message()}
        checks["workers"] = {"ok": False, "count": None, "message": "unknown while Redis is unreachable"}
    required = {name: check for name, check in checks.items() if check.get("required", True)}
    if all(check["ok"] for check in required.values()):
        degraded = not all(check["ok"] for check in checks.values())
        return jsonify({"status": "degraded" if degraded else "ready", "checks": checks})
    failing = [name for name, check in required.items() if not check["ok"]]
    message = "; ".join(str(checks[name]["message"]) for name in failing)
    extra = {"status": "not_ready", "checks": checks}
    return error_response(503, "not_ready", f"not ready: {message}", None, {"Retry-After": "5"}, extra)


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    """Queue depth, jobs, levels, cache, re-optimisations and latency, in the Prometheus text format."""
    body = exposition(get_redis(), current_app.config["QUEUE"])
    return Response(body, status=200, content_type=CONTENT_TYPE_LATEST)
