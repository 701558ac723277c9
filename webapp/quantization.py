"""The quantization endpoints, answered from the live workers' heartbeats in Redis."""

from __future__ import annotations

import time

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from webapp import aggregate
from webapp.apidoc import documented
from webapp.auth import token_required
from webapp.body import json_object
from webapp.calculate import calculation
from webapp.extensions import current_settings, get_redis
from webapp.queueing import depth_by_priority, running
from worker import service_state
from worker.contracts import (
    CacheView,
    CalculateRequest,
    Calculation,
    ClearResult,
    MemoryView,
    ProfileList,
    ProfileQuery,
    QueueSummary,
    StatusView,
    validated,
)
from worker.profiles import read_profiles
from worker.status import clear_acknowledgements, live_workers, request_cache_clear

bp = Blueprint("quantization", __name__, url_prefix="/api/v1/quantization")

POLL_SECONDS = 0.1


def queue_summary() -> QueueSummary:
    """Jobs waiting (in total and per priority step) and jobs running."""
    by_priority = depth_by_priority()
    return QueueSummary(
        name=current_settings().queue,
        depth=sum(by_priority.values()),
        by_priority={str(p): n for p, n in sorted(by_priority.items())},
        running=running(),
    )


@bp.get("/status")
@documented("quantizationStatus", HTTP_200=(StatusView, "Status (status no_workers when none is alive)."))
def status() -> ResponseReturnValue:
    """Every live worker's device, memory, levels and models, aggregated, the queue, and the supervised processes."""
    client = get_redis()
    view = aggregate.status_view(live_workers(client), queue_summary(), service_state.summary(client))
    return jsonify(view.model_dump(mode="json"))


@bp.post("/calculate")
@documented(
    "calculate", (400, 413, 415), inputs={"json": CalculateRequest}, HTTP_200=(Calculation, "The level and its cost.")
)
def calculate() -> ResponseReturnValue:
    """The level a model of this size would run at now, from the live memory and load."""
    ask = validated(CalculateRequest, json_object())
    queue = queue_summary()
    answer = calculation(ask, live_workers(get_redis()), queue.depth + queue.running, current_settings().thresholds)
    return jsonify(answer.model_dump(mode="json"))


@bp.get("/memory")
@documented("quantizationMemory", HTTP_200=(MemoryView, "Memory."))
def memory() -> ResponseReturnValue:
    """Memory of the workers' pools, summed once per pool, with each worker's reading and band."""
    return jsonify(aggregate.memory_view(live_workers(get_redis())).model_dump(mode="json"))


@bp.get("/cache")
@documented("quantizationCache", HTTP_200=(CacheView, "Caches."))
def cache() -> ResponseReturnValue:
    """Model caches of every live worker, summed, with each worker's own."""
    return jsonify(aggregate.cache_view(live_workers(get_redis())).model_dump(mode="json"))


@bp.post("/cache/clear")
@documented("clearCache", guarded=True, HTTP_200=(ClearResult, "What each worker freed."))
@token_required
def clear_cache() -> ResponseReturnValue:
    """Empty every live worker's cache (models in use are spared) and wait for their answers."""
    client = get_redis()
    names = sorted(w.worker for w in live_workers(client))
    if not names:
        message = "no worker is alive, so no cache holds a model: nothing to clear"
        empty = ClearResult(status="success", message=message, generation=None, workers={}, pending=[])
        return jsonify(empty.model_dump(mode="json"))
    generation = request_cache_clear(client)
    wait = current_settings().clear_wait_seconds
    deadline = time.monotonic() + wait
    acks = clear_acknowledgements(client, generation)
    while set(names) - set(acks) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        acks = clear_acknowledgements(client, generation)
    pending = sorted(set(names) - set(acks))
    message = "Cache cleared"
    if pending:
        message = (
            f"Cache cleared on {len(acks)} of {len(names)} workers; {', '.join(pending)} did not answer within "
            f"{wait:g} s (DYNAQUANT_CLEAR_WAIT_SECONDS) and will clear when they next beat"
        )
    result = ClearResult(
        status="partial" if pending else "success",
        message=message,
        generation=generation,
        workers=acks,
        pending=pending,
    )
    return jsonify(result.model_dump(mode="json"))


def _filter(name: str) -> str | None:
    """One optional filter of the query (given twice: both, comma-joined, so the error shows what came)."""
    given = request.args.getlist(name)
    return None if not given else ",".join(given)


@bp.get("/profiles")
@documented(
    "quantizationProfiles", (400,), inputs={"query": ProfileQuery}, HTTP_200=(ProfileList, "Measured level profiles.")
)
def profiles() -> ResponseReturnValue:
    """Every host's measured profile of each model at each level: speed, resident memory and quality."""
    query = validated(ProfileQuery, {"model": _filter("model"), "host": _filter("host")})
    found = read_profiles(get_redis(), query.model, query.host)
    return jsonify(ProfileList(profiles=found, count=len(found)).model_dump(mode="json"))
