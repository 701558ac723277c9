"""POST/GET /api/v1/batches against a real Redis: all items or none."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from tests.states import job_result
from worker.jobs import JobStore

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.webapp_fixtures import Broker, ErrorCheck

pytest_plugins = ["tests.webapp_fixtures"]

TEXTS = [
    "The mitochondria is the powerhouse of the cell.",
    "Tectonic plates move slowly over the mantle.",
    "Inflation erodes the purchasing power of money.",
    "Photosynthesis converts light into chemical energy.",
    "Volcanoes form where magma reaches the surface.",
]


def test_batch_queues_every_item_with_defaults(client: FlaskClient, broker: Broker) -> None:
    items: list[dict[str, Any]] = [{"text": t} for t in TEXTS]
    items[0]["priority"] = 0
    response = client.post("/api/v1/batches", json={"items": items, "defaults": {"grade_level": 6, "priority": 9}})
    assert response.status_code == 202
    body = response.get_json()
    assert len(body["job_ids"]) == 5 and len(set(body["job_ids"])) == 5
    assert body["status_url"] == f"/api/v1/batches/{body['batch_id']}"
    assert response.headers["Location"] == body["status_url"]
    assert broker.lists()[0] == 1 and broker.lists()[9] == 4

    batch = client.get(body["status_url"]).get_json()
    assert batch["batch_id"] == body["batch_id"] and batch["total"] == 5 and batch["done"] is False
    assert batch["counts"]["queued"] == 5
    assert [j["job_id"] for j in batch["jobs"]] == body["job_ids"]
    job = client.get(f"/api/v1/jobs/{body['job_ids'][1]}").get_json()
    assert job["batch_id"] == body["batch_id"] and job["request"]["grade_level"] == 6


def test_batch_counts_follow_the_jobs(client: FlaskClient, redis_db: redis.Redis) -> None:
    body = client.post("/api/v1/batches", json={"items": [{"text": t, "grade_level": 4} for t in TEXTS[:3]]}).get_json()
    store = JobStore(redis_db)
    first, second, third = body["job_ids"]
    store.start(first, "worker-a")
    store.succeed(first, job_result(text="Cells get energy from mitochondria.", level="int8"))
    store.start(second, "worker-a")
    store.fail(second, "model_load_failed", "file missing")
    assert client.delete(f"/api/v1/jobs/{third}").status_code == 200
    batch = client.get(body["status_url"]).get_json()
    assert batch["counts"] == {"queued": 0, "running": 0, "succeeded": 1, "failed": 1, "cancelled": 1}
    assert batch["done"] is True
    assert batch["jobs"][0]["result"]["level"] == "int8"


def test_a_shared_text_in_defaults(client: FlaskClient) -> None:
    payload = {"items": [{"grade_level": g} for g in (3, 6, 9)], "defaults": {"text": TEXTS[0]}}
    assert client.post("/api/v1/batches", json=payload).status_code == 202


BAD_BATCHES: list[tuple[dict[str, Any], str]] = [
    ({}, "items"),
    ({"items": []}, "items"),
    ({"items": "text"}, "items"),
    ({"items": [{"text": "a", "grade_level": 3}], "extra": 1}, "extra"),
    ({"items": [{"text": "a", "grade_level": 3}], "defaults": []}, "defaults"),
    ({"items": [{"text": "a", "grade_level": 3}], "defaults": {"colour": "red"}}, "defaults.colour"),
    ({"items": [{"text": "a", "grade_level": 3}], "defaults": {"grade_level": 40}}, "defaults.grade_level"),
    ({"items": [{"text": "a", "grade_level": 3}], "defaults": {"priority": 10}}, "defaults.priority"),
    ({"items": [{"text": "a", "grade_level": 3}], "defaults": {"model": "nope"}}, "defaults.model"),
    ({"items": [{"text": "a", "grade_level": 3}, "b"]}, "items[1]"),
    ({"items": [{"text": "a", "grade_level": 3}] * 3 + [{"text": "b", "grade_level": 0}]}, "items[3].grade_level"),
    ({"items": [{"text": "a", "grade_level": 3}, {"grade_level": 3}]}, "items[1].text"),
    ({"items": [{"text": "a", "grade_level": "3"}]}, "items[0].grade_level"),
    ({"items": [{"text": "a", "grade_level": 3, "task_priority": "now"}]}, "items[0].task_priority"),
    ({"items": [{"text": "a", "grade_level": 3, "force_quantization": "int3"}]}, "items[0].force_quantization"),
    ({"items": [{"text": "a", "grade_level": 3, "priority": 10}]}, "items[0].priority"),
    ({"items": [{"text": "a", "grade_level": 3, "model": "nope"}]}, "items[0].model"),
    ({"items": [{"text": "a" * 100_000, "grade_level": 3}]}, "items[0].text"),
]


@pytest.mark.parametrize(("payload", "field"), BAD_BATCHES, ids=[f for _, f in BAD_BATCHES])
def test_one_bad_item_refuses_the_whole_batch(
    client: FlaskClient, broker: Broker, api_error: ErrorCheck, payload: dict[str, Any], field: str
) -> None:
    api_error(client.post("/api/v1/batches", json=payload), 400, field)
    assert broker.nothing_queued()


def test_batch_size_is_limited(make_app: Callable[..., Flask], broker: Broker, api_error: ErrorCheck) -> None:
    client = make_app(MAX_BATCH=3).test_client()
    items = [{"text": t, "grade_level": 5} for t in TEXTS[:4]]
    body = api_error(client.post("/api/v1/batches", json={"items": items}), 400, "items")
    assert "at most 3" in body["error"]["message"]
    assert broker.nothing_queued()
    assert client.post("/api/v1/batches", json={"items": items[:3]}).status_code == 202


def test_unknown_batch_is_404(client: FlaskClient, api_error: ErrorCheck) -> None:
    api_error(client.get("/api/v1/batches/00000000-0000-4000-8000-000000000000"), 404, "batch_id")


def test_a_large_batch_is_quick(client: FlaskClient, broker: Broker) -> None:
    items = [{"text": f"Sentence number {i} about science.", "grade_level": 1 + i % 12} for i in range(500)]
    response = client.post("/api/v1/batches", json={"items": items})
    assert response.status_code == 202
    assert broker.depth() == 500 and broker.records() == 500
