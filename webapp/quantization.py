"""The spec's quantization endpoints, answered from the live workers' states in Redis."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from webapp import aggregate
from webapp.auth import token_required
from webapp.body import json_object
from webapp.calculate import calculation, parse_request, reading
from webapp.extensions import get_redis
from webapp.queueing import depth_by_priority, running
from worker import service_state
from worker.policy import thresholds_from_env
from worker.status import clear_acknowledgements, live_workers, request_cache_clear

bp = Blueprint("quantization", __name__, url_prefix="/api/v1/quantization")

POLL_SECONDS = 0.1


def queue_summary() -> dict[str, Any]:
    """Jobs waiting (in total and per priority step) and jobs running."""
    by_priority = depth_by_priority()
    return {
        "name": current_app.config["QUEUE"],
        "depth": sum(by_priority.values()),
        "by_priority": {str(p): n for p, n in sorted(by_priority.items())},
        "running": running(),
    }


@bp.get("/status")
def status() -> ResponseReturnValue:
    """Device, load, memory, capabilities and models of every live worker, aggregated, plus the queue."""
    workers = live_workers(get_redis())
    body = aggregate.status_view(workers, queue_summary(), thresholds_from_env())
    body["service"] = service_state.summary(service_state.live_supervisors(get_redis()))
    return jsonify(body)


@bp.post("/calculate")
def calculate() -> ResponseReturnValue:
    """The level a model of this size would get now, from the live memory and load."""
    size, task_priority, backend = parse_request(json_object())
    workers = live_workers(get_redis())
    queue = queue_summary()
    load = int(queue["depth"]) + int(queue["running"])
    return jsonify(calculation(size, task_priority, backend, reading(workers), load, thresholds_from_env()))


@bp.get("/memory")
def memory() -> ResponseReturnValue:
    """Memory of the workers' pools, summed once per pool, with each worker's reading and band."""
    return jsonify(aggregate.memory_view(live_workers(get_redis()), thresholds_from_env()))


@bp.get("/cache")
def cache() -> ResponseReturnValue:
    """Model caches of every live worker, summed, with each worker's own."""
    return jsonify(aggregate.cache_view(live_workers(get_redis())))


@bp.post("/cache/clear")
@token_required
def clear_cache() -> ResponseReturnValue:
    """Ask every live worker to empty its cache (models in use are spared); wait for their answers."""
    client = get_redis()
    names = sorted(aggregate.name_of(w) for w in live_workers(client))
    if not names:
        return jsonify(
            {
                "status": "success",
                "message": "no worker is alive, so no cache holds a model: nothing to clear",
                "generation": None,
                "workers": {},
                "pending": [],
            }
        )
    generation = request_cache_clear(client)
    deadline = time.monotonic() + float(current_app.config["CLEAR_WAIT_SECONDS"])
    acks = clear_acknowledgements(client, generation)
    while set(names) - set(acks) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        acks = clear_acknowledgements(client, generation)
    pending = sorted(set(names) - set(acks))
    if pending:
        message = (
            f"Cache cleared on {len(acks)} of {len(names)} workers; {', '.join(pending)} did not answer within "
            f"{current_app.config['CLEAR_WAIT_SECONDS']:g} s (DYNAQUANT_CLEAR_WAIT_SECONDS) and will clear when "
            "they next beat"
        )
    else:
        message = "Cache cleared"
    return jsonify(
        {
            "status": "partial" if pending else "success",
            "message": message,
            "generation": generation,
            "workers": acks,
            "pending": pending,
        }
    )
