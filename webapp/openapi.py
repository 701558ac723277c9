"""The OpenAPI document at /openapi.json, written by hand and filled with the live limits and models."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from webapp.catalog import known_models
from webapp.extensions import get_redis
from webapp.openapi_schemas import Schema, components, ref
from worker.jobs import RECENT_KEEP
from worker.status import live_workers

bp = Blueprint("openapi", __name__)

JSON = "application/json"


def _json(schema: Schema, description: str, headers: dict[str, Any] | None = None) -> Schema:
    response: Schema = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _errors(*statuses: int) -> dict[str, Schema]:
    texts = {
        400: "Bad input: the error names the field.",
        401: "API_TOKEN is set and the request has no valid `Authorization: Bearer` header.",
        404: "No such job or batch.",
        409: "The job already ended.",
        413: "The body is larger than DYNAQUANT_MAX_BODY_BYTES.",
        414: "The request line is longer than the server takes (gunicorn: 4094 bytes).",
        415: "The body is not sent as application/json.",
        429: "The queue is full (DYNAQUANT_MAX_QUEUE): nothing was accepted.",
        500: "Unexpected server error (logged).",
        503: "Redis or the broker is unreachable, or (readyz) no worker is alive.",
    }
    retry = {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait before retrying."}}
    return {str(s): _json(ref("Error"), texts[s], retry if s in (429,) else None) for s in (*statuses, 500, 503)}


def _body(schema: Schema, description: str) -> Schema:
    return {"required": True, "description": description, "content": {JSON: {"schema": schema}}}


def _idempotency() -> Schema:
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "A retry with the same key returns the first answer's job (or batch) and queues nothing.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    }


def _id_param(name: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _location() -> dict[str, Any]:
    return {"Location": {"schema": {"type": "string"}, "description": "Where to poll."}}


def paths(guarded: list[dict[str, list[str]]]) -> dict[str, Any]:
    """Every endpoint; `guarded` is the security requirement of those that change state."""
    auth = {"security": guarded} if guarded else {}
    unauthorized = (401,) if guarded else ()
    job_links = {
        "GetJob": {"operationId": "getJob", "parameters": {"job_id": "$response.body#/job_id"}},
        "CancelJob": {"operationId": "cancelJob", "parameters": {"job_id": "$response.body#/job_id"}},
    }
    accepted_job = {**_json(ref("JobAccepted"), "Queued.", _location()), "links": job_links}
    batch_links = {"GetBatch": {"operationId": "getBatch", "parameters": {"batch_id": "$response.body#/batch_id"}}}
    accepted_batch = {**_json(ref("BatchAccepted"), "All items queued.", _location()), "links": batch_links}
    return {
        "/api/v1/jobs": {
            "post": {
                "operationId": "submitJob",
                "summary": "Queue one simplification job.",
                **auth,
                "parameters": [_idempotency()],
                "requestBody": _body(ref("JobRequest"), "The job."),
                "responses": {
                    "202": accepted_job,
                    "200": {
                        **_json(ref("JobAccepted"), "Replay of an earlier request with this Idempotency-Key."),
                        "links": job_links,
                    },
                    **_errors(400, *unauthorized, 413, 415, 429),
                },
            },
            "get": {
                "operationId": "listJobs",
                "summary": "The latest jobs, newest first.",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": RECENT_KEEP, "default": 50},
                    }
                ],
                "responses": {"200": _json(ref("JobList"), "Jobs."), **_errors(400, 414)},
            },
        },
        "/api/v1/jobs/{job_id}": {
            "parameters": [_id_param("job_id")],
            "get": {
                "operationId": "getJob",
                "summary": "A job's status, request, result or error, and timestamps.",
                "responses": {"200": _json(ref("Job"), "The job."), **_errors(404, 414)},
            },
            "delete": {
                "operationId": "cancelJob",
                "summary": "Cancel a queued or running job.",
                **auth,
                "responses": {"200": _json(ref("Cancelled"), "Cancelled."), **_errors(*unauthorized, 404, 409, 414)},
            },
        },
        "/api/v1/batches": {
            "post": {
                "operationId": "submitBatch",
                "summary": "Queue many jobs at once: all or none.",
                **auth,
                "parameters": [_idempotency()],
                "requestBody": _body(ref("BatchRequest"), "The items and their shared defaults."),
                "responses": {
                    "202": accepted_batch,
                    "200": {
                        **_json(ref("BatchAccepted"), "Replay of an earlier request with this Idempotency-Key."),
                        "links": batch_links,
                    },
                    **_errors(400, *unauthorized, 413, 415, 429),
                },
            }
        },
        "/api/v1/batches/{batch_id}": {
            "parameters": [_id_param("batch_id")],
            "get": {
                "operationId": "getBatch",
                "summary": "Counts by status and each job's status.",
                "responses": {"200": _json(ref("Batch"), "The batch."), **_errors(404, 414)},
            },
        },
        "/api/v1/quantization/status": {
            "get": {
                "operationId": "quantizationStatus",
                "summary": "Every live worker's device, memory, levels and models, aggregated, and the queue.",
                "responses": {"200": _json(ref("Status"), "Status (status no_workers when none is alive).")},
            }
        },
        "/api/v1/quantization/calculate": {
            "post": {
                "operationId": "calculate",
                "summary": "The level a model of this size would run at now.",
                "requestBody": _body(ref("CalculateRequest"), "Model size and priority."),
                "responses": {"200": _json(ref("Calculation"), "The level and its cost."), **_errors(400, 413, 415)},
            }
        },
        "/api/v1/quantization/memory": {
            "get": {
                "operationId": "quantizationMemory",
                "summary": "Memory of the workers' pools.",
                "responses": {"200": _json(ref("Memory"), "Memory.")},
            }
        },
        "/api/v1/quantization/cache": {
            "get": {
                "operationId": "quantizationCache",
                "summary": "Model caches of the live workers.",
                "responses": {"200": _json(ref("Cache"), "Caches.")},
            }
        },
        "/api/v1/quantization/cache/clear": {
            "post": {
                "operationId": "clearCache",
                "summary": "Empty every live worker's cache (models in use are spared).",
                **auth,
                "responses": {"200": _json(ref("ClearResult"), "What each worker freed."), **_errors(*unauthorized)},
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "The process is up.",
                "responses": {"200": _json(ref("Health"), "Up.")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Redis answers and at least one worker is alive.",
                "responses": {
                    "200": _json(ref("Ready"), "Ready."),
                    "503": _json(ref("Error"), "Not ready: the error says what is missing."),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics.",
                "responses": {
                    "200": {
                        "description": "Prometheus text format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors(),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document.")},
            }
        },
    }


def document(models: list[str], max_batch: int, token_set: bool) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document for the current settings."""
    schemes = {"bearerAuth": {"type": "http", "scheme": "bearer", "description": "The API_TOKEN."}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dynaquant",
            "version": "1.0.0",
            "description": "Text simplification jobs on a local LLM whose precision adapts to memory and load. "
            "Every error is {error: {code, message, field}}."
            + (" POST and DELETE need `Authorization: Bearer <API_TOKEN>`; reads are open." if token_set else ""),
        },
        "paths": paths([{"bearerAuth": []}] if token_set else []),
        "components": {"schemas": components(models, max_batch), **({"securitySchemes": schemes} if token_set else {})},
    }


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    """The OpenAPI document, with this server's limits and the models it knows now."""
    try:
        workers = live_workers(get_redis())
    except Exception:  # the document must be readable while Redis is down
        workers = []
    models = known_models(workers, current_app.config.get("MODELS_FILE"))
    return jsonify(document(models, int(current_app.config["MAX_BATCH"]), bool(current_app.config.get("API_TOKEN"))))
