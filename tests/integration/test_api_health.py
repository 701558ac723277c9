"""/healthz, /readyz, /metrics and /openapi.json."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import redis
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from tests.states import job_result
from worker.jobs import REOPT_KEY, JobStore

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.webapp_fixtures import ErrorCheck

pytest_plugins = ["tests.webapp_fixtures"]

JOB = {"text": "Gravity pulls objects toward each other.", "grade_level": 7}
METRICS = {
    "dynaquant_queue_depth",
    "dynaquant_jobs_total",
    "dynaquant_jobs_running",
    "dynaquant_worker_level",
    "dynaquant_cache_bytes",
    "dynaquant_reoptimizations_total",
    "dynaquant_job_latency_seconds_bucket",
    "dynaquant_job_latency_seconds_sum",
    "dynaquant_job_latency_seconds_count",
    "dynaquant_workers_alive",
    "dynaquant_jobs_by_level_total",
}


def samples(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by name and sorted labels."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_healthz(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_needs_a_worker(client: FlaskClient, fake_worker: Any, api_error: ErrorCheck) -> None:
    response = client.get("/readyz")
    body = api_error(response, 503, None)
    assert body["checks"]["redis"]["ok"] is True and body["checks"]["workers"]["ok"] is False
    assert "no worker is alive" in body["error"]["message"]
    fake_worker("worker-a")
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"]["workers"]["count"] == 1


def test_metrics_with_nothing_going_on(client: FlaskClient) -> None:
    found = samples(client)
    assert {name for name, _ in found} >= METRICS - {"dynaquant_worker_level", "dynaquant_cache_bytes",
                                                     "dynaquant_jobs_by_level_total"}  # fmt: skip
    assert found[("dynaquant_workers_alive", ())] == 0
    assert found[("dynaquant_queue_depth", (("priority", "0"),))] == 0


def test_metrics_read_redis(client: FlaskClient, redis_db: redis.Redis, fake_worker: Any) -> None:
    fake_worker("worker-a")
    ids = [client.post("/api/v1/jobs", json={**JOB, "priority": p}).get_json()["job_id"] for p in (0, 9, 9)]
    store = JobStore(redis_db)
    store.start(ids[1], "worker-a")
    store.succeed(ids[1], job_result(text="Things pull on each other.", level="int4"))
    client.delete(f"/api/v1/jobs/{ids[2]}")
    redis_db.incr(REOPT_KEY)
    redis_db.hset("unacked", "tag", "{}")

    found = samples(client)
    assert {name for name, _ in found} >= METRICS
    assert found[("dynaquant_queue_depth", (("priority", "0"),))] == 1
    assert found[("dynaquant_queue_depth", (("priority", "9"),))] == 2
    assert found[("dynaquant_jobs_running", ())] == 1
    assert found[("dynaquant_jobs_total", (("status", "submitted"),))] == 3
    assert found[("dynaquant_jobs_total", (("status", "succeeded"),))] == 1
    assert found[("dynaquant_jobs_total", (("status", "cancelled"),))] == 1
    assert found[("dynaquant_jobs_by_level_total", (("level", "int4"),))] == 1
    assert found[("dynaquant_reoptimizations_total", ())] == 1
    assert found[("dynaquant_workers_alive", ())] == 1
    assert (
        found[("dynaquant_worker_level", (("level", "int4"), ("model", "gemma-3-270m"), ("worker", "worker-a")))] == 1
    )
    assert found[("dynaquant_cache_bytes", (("worker", "worker-a"),))] == 253 * 1024**2, "the cache counts MiB"
    assert found[("dynaquant_job_latency_seconds_count", ())] == 1
    assert found[("dynaquant_job_latency_seconds_bucket", (("le", "+Inf"),))] == 1
    assert found[("dynaquant_job_latency_seconds_bucket", (("le", "600.0"),))] == 1


def test_openapi_is_a_valid_document(client: FlaskClient) -> None:
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    schema = schemathesis.openapi.from_dict(doc)
    schema.validate()
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    labels = {op.label for op in operations}
    assert labels == {
        "POST /api/v1/jobs", "GET /api/v1/jobs", "GET /api/v1/jobs/{job_id}", "DELETE /api/v1/jobs/{job_id}",
        "GET /api/v1/jobs/{job_id}/review", "POST /api/v1/jobs/{job_id}/review", "GET /api/v1/jobs/{job_id}/export",
        "GET /api/v1/reviews/labels",
        "POST /api/v1/batches", "GET /api/v1/batches/{batch_id}", "GET /api/v1/quantization/status",
        "POST /api/v1/quantization/calculate", "GET /api/v1/quantization/memory", "GET /api/v1/quantization/cache",
        "POST /api/v1/quantization/cache/clear", "GET /api/v1/quantization/profiles", "GET /healthz", "GET /readyz",
        "GET /metrics", "GET /openapi.json",
    }  # fmt: skip


def test_openapi_follows_the_live_limits(make_app: Callable[..., Flask], fake_worker: Any) -> None:
    fake_worker("worker-a")
    doc = make_app(MAX_BATCH=7, MAX_TEXT_CHARS=1234).test_client().get("/openapi.json").get_json()
    schemas = doc["components"]["schemas"]
    assert schemas["JobRequest"]["properties"]["text"]["maxLength"] == 1234
    assert schemas["BatchRequest"]["properties"]["items"]["maxItems"] == 7
    assert set(schemas["JobRequest"]["properties"]["model"]["enum"]) >= {"gemma-3-270m", "tiny-test-model"}
    assert "securitySchemes" not in doc["components"]
