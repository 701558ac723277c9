"""Issue 7's guarantees at the API: body limit, flood control, idempotency, the token, and Redis outages."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.webapp_fixtures import Broker, ErrorCheck

pytest_plugins = ["tests.webapp_fixtures"]

JOB = {"text": "Water boils at one hundred degrees Celsius at sea level.", "grade_level": 4}
CLOSED_PORT_URL = "redis://:hunter2@127.0.0.1:1/0"


def test_oversized_body_is_413(make_app: Callable[..., Flask], broker: Broker, api_error: ErrorCheck) -> None:
    client = make_app(MAX_CONTENT_LENGTH=2000).test_client()
    body = api_error(client.post("/api/v1/jobs", json={**JOB, "text": "a" * 3000}), 413, "body")
    assert "2000" in body["error"]["message"]
    api_error(client.post("/api/v1/batches", json={"items": [JOB] * 40}), 413, "body")
    assert broker.nothing_queued()
    assert client.post("/api/v1/jobs", json=JOB).status_code == 202


def test_default_body_limit_is_one_mib(client: FlaskClient, api_error: ErrorCheck) -> None:
    assert client.application.config["MAX_CONTENT_LENGTH"] == 1024 * 1024
    api_error(client.post("/api/v1/jobs", data="x" * (1024 * 1024 + 1), content_type="application/json"), 413, "body")


def test_a_full_queue_refuses_with_429(make_app: Callable[..., Flask], broker: Broker, api_error: ErrorCheck) -> None:
    client = make_app(MAX_QUEUE=3, RETRY_AFTER_SECONDS=7).test_client()
    assert client.post("/api/v1/batches", json={"items": [JOB, JOB]}).status_code == 202
    response = client.post("/api/v1/batches", json={"items": [JOB, JOB]})
    body = api_error(response, 429, None)
    assert response.headers["Retry-After"] == "7"
    assert body["queue_depth"] == 2 and body["max_queue"] == 3
    assert broker.depth() == 2 and broker.records() == 2, "a batch that would pass the limit is refused whole"

    assert client.post("/api/v1/jobs", json=JOB).status_code == 202
    response = client.post("/api/v1/jobs", json=JOB)
    api_error(response, 429, None)
    assert response.headers["Retry-After"] == "7"
    assert broker.depth() == 3 and broker.records() == 3


def test_flood_is_counted_exactly(make_app: Callable[..., Flask], broker: Broker) -> None:
    client = make_app(MAX_QUEUE=25).test_client()
    statuses = [client.post("/api/v1/jobs", json={**JOB, "priority": i % 10}).status_code for i in range(60)]
    assert statuses.count(202) == 25 and statuses.count(429) == 35
    assert broker.depth() == 25 and broker.records() == 25


def test_idempotency_key_returns_the_same_job(client: FlaskClient, broker: Broker) -> None:
    headers = {"Idempotency-Key": "order-17-attempt"}
    first = client.post("/api/v1/jobs", json=JOB, headers=headers)
    again = client.post("/api/v1/jobs", json=JOB, headers=headers)
    assert first.status_code == 202 and again.status_code == 200
    assert again.get_json()["job_id"] == first.get_json()["job_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert broker.depth() == 1 and broker.records() == 1
    other = client.post("/api/v1/jobs", json=JOB, headers={"Idempotency-Key": "another"})
    assert other.status_code == 202 and other.get_json()["job_id"] != first.get_json()["job_id"]


def test_idempotency_replay_shows_the_current_status(client: FlaskClient) -> None:
    headers = {"Idempotency-Key": "k-cancel"}
    job_id = client.post("/api/v1/jobs", json=JOB, headers=headers).get_json()["job_id"]
    client.delete(f"/api/v1/jobs/{job_id}")
    replay = client.post("/api/v1/jobs", json=JOB, headers=headers).get_json()
    assert replay == {"job_id": job_id, "status_url": f"/api/v1/jobs/{job_id}", "status": "cancelled"}


def test_idempotency_key_on_batches(client: FlaskClient, broker: Broker) -> None:
    headers = {"Idempotency-Key": "batch-1"}
    first = client.post("/api/v1/batches", json={"items": [JOB, JOB]}, headers=headers).get_json()
    again = client.post("/api/v1/batches", json={"items": [JOB, JOB]}, headers=headers)
    assert again.status_code == 200
    assert again.get_json()["batch_id"] == first["batch_id"] and again.get_json()["job_ids"] == first["job_ids"]
    assert broker.depth() == 2
    job = client.post("/api/v1/jobs", json=JOB, headers=headers)
    assert job.status_code == 202, "a job and a batch do not share keys"


def test_concurrent_retries_get_one_job(app: Flask, broker: Broker) -> None:
    answers: list[str] = []

    def submit() -> None:
        response = app.test_client().post("/api/v1/jobs", json=JOB, headers={"Idempotency-Key": "race"})
        answers.append(response.get_json()["job_id"])

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 8 and len(set(answers)) == 1
    assert broker.depth() == 1 and broker.records() == 1


def test_a_replay_is_answered_even_when_the_queue_is_full(make_app: Callable[..., Flask]) -> None:
    client = make_app(MAX_QUEUE=1).test_client()
    headers = {"Idempotency-Key": "full"}
    first = client.post("/api/v1/jobs", json=JOB, headers=headers)
    assert client.post("/api/v1/jobs", json=JOB).status_code == 429
    replay = client.post("/api/v1/jobs", json=JOB, headers=headers)
    assert replay.status_code == 200 and replay.get_json()["job_id"] == first.get_json()["job_id"]


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\tin"])
def test_a_malformed_idempotency_key_is_400(
    client: FlaskClient, broker: Broker, api_error: ErrorCheck, key: str
) -> None:
    api_error(client.post("/api/v1/jobs", json=JOB, headers={"Idempotency-Key": key}), 400, "Idempotency-Key")
    assert broker.nothing_queued()


WRITES: list[tuple[str, str, Any]] = [
    ("post", "/api/v1/jobs", JOB),
    ("post", "/api/v1/batches", {"items": [JOB]}),
    ("post", "/api/v1/quantization/cache/clear", None),
]


def test_token_guards_every_write(make_app: Callable[..., Flask], broker: Broker, api_error: ErrorCheck) -> None:
    client = make_app(API_TOKEN="s3cret").test_client()
    for method, path, payload in WRITES:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic czNjcmV0"}):
            response = getattr(client, method)(path, json=payload, headers=headers)
            api_error(response, 401, "Authorization")
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert broker.nothing_queued()

    good = {"Authorization": "Bearer s3cret"}
    for method, path, payload in WRITES:
        assert getattr(client, method)(path, json=payload, headers=good).status_code in (200, 202)
    job_id = client.post("/api/v1/jobs", json=JOB, headers=good).get_json()["job_id"]
    api_error(client.delete(f"/api/v1/jobs/{job_id}"), 401, "Authorization")
    assert client.get(f"/api/v1/jobs/{job_id}").get_json()["status"] == "queued"
    assert client.delete(f"/api/v1/jobs/{job_id}", headers=good).status_code == 200


def test_token_leaves_reads_open(make_app: Callable[..., Flask]) -> None:
    client = make_app(API_TOKEN="s3cret").test_client()
    for path in ("/api/v1/jobs", "/api/v1/quantization/status", "/api/v1/quantization/memory",
                 "/api/v1/quantization/cache", "/healthz", "/metrics", "/openapi.json"):  # fmt: skip
        assert client.get(path).status_code == 200, path
    assert client.post("/api/v1/quantization/calculate", json={"model_size_params": 7}).status_code == 200
    doc = client.get("/openapi.json").get_json()
    assert doc["paths"]["/api/v1/jobs"]["post"]["security"] == [{"bearerAuth": []}]
    assert "security" not in doc["paths"]["/api/v1/jobs"]["get"]


def test_token_is_checked_before_the_body(make_app: Callable[..., Flask], api_error: ErrorCheck) -> None:
    client = make_app(API_TOKEN="s3cret").test_client()
    api_error(client.post("/api/v1/jobs", data="garbage", content_type="text/plain"), 401, "Authorization")


ENDPOINTS = [
    ("get", "/api/v1/jobs/00000000-0000-4000-8000-000000000000", None),
    ("get", "/api/v1/jobs", None),
    ("delete", "/api/v1/jobs/00000000-0000-4000-8000-000000000000", None),
    ("post", "/api/v1/jobs", JOB),
    ("post", "/api/v1/batches", {"items": [JOB]}),
    ("get", "/api/v1/batches/00000000-0000-4000-8000-000000000000", None),
    ("get", "/api/v1/quantization/status", None),
    ("post", "/api/v1/quantization/calculate", {"model_size_params": 7}),
    ("get", "/api/v1/quantization/memory", None),
    ("get", "/api/v1/quantization/cache", None),
    ("post", "/api/v1/quantization/cache/clear", None),
    ("get", "/metrics", None),
]


@pytest.mark.parametrize(("method", "path", "payload"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_redis_down_is_503_json_without_the_password(
    api_error: ErrorCheck, method: str, path: str, payload: Any
) -> None:
    from webapp import create_app

    client = create_app({"TESTING": True, "REDIS_URL": CLOSED_PORT_URL}).test_client()
    response = getattr(client, method)(path, json=payload)
    body = api_error(response, 503, None)
    assert body["error"]["code"] == "redis_unavailable"
    message = body["error"]["message"]
    assert "redis://:***@127.0.0.1:1/0" in message and "unreachable" in message and "start" in message
    assert "hunter2" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)


def test_health_and_docs_answer_while_redis_is_down() -> None:
    from webapp import create_app

    client = create_app({"TESTING": True, "REDIS_URL": CLOSED_PORT_URL}).test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["checks"]["redis"]["ok"] is False


def test_broker_failure_undoes_the_job(
    make_app: Callable[..., Flask], broker: Broker, api_error: ErrorCheck, redis_db: redis.Redis
) -> None:
    client = make_app(CELERY_BROKER_URL=CLOSED_PORT_URL).test_client()
    headers = {"Idempotency-Key": "retry-me"}
    body = api_error(client.post("/api/v1/jobs", json=JOB, headers=headers), 503, None)
    assert body["error"]["code"] == "broker_unavailable" and "hunter2" not in json.dumps(body)
    api_error(client.post("/api/v1/batches", json={"items": [JOB] * 3}), 503, None)
    assert broker.nothing_queued()
    assert redis_db.hget("dq:metrics:jobs_total", "submitted") in (None, b"0")
    healthy = make_app().test_client()
    assert healthy.post("/api/v1/jobs", json=JOB, headers=headers).status_code == 202, "the key was released"


def test_an_unexpected_error_is_a_json_500(app: Flask, api_error: ErrorCheck, monkeypatch: pytest.MonkeyPatch) -> None:
    from webapp import jobs

    def explode(*_: Any) -> None:
        raise RuntimeError("boom with secrets")

    monkeypatch.setattr(jobs, "parse_job", explode)
    response = app.test_client().post("/api/v1/jobs", json=JOB)
    body = api_error(response, 500, None)
    assert "boom" not in body["error"]["message"] and "Traceback" not in response.get_data(as_text=True)


@pytest.fixture
def password_redis(tmp_path: Any) -> Iterator[str]:
    """A throwaway redis-server that wants a password; yields its URL without the password."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [server, "--port", str(port), "--requirepass", "s3cret", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen([*args, "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port, password="s3cret")
    try:
        for _ in range(50):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        yield f"127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_redis_password_in_the_url(password_redis: str, api_error: ErrorCheck) -> None:
    from webapp import create_app

    def submit(url: str) -> Any:
        client = create_app({"TESTING": True, "REDIS_URL": url}).test_client()
        return client.post("/api/v1/jobs", json=JOB)

    for wrong in (f"redis://{password_redis}", f"redis://:nope@{password_redis}"):
        body = api_error(submit(wrong), 503, None)
        assert body["error"]["code"] == "redis_auth_failed" and "nope" not in body["error"]["message"]
    right = submit(f"redis://:s3cret@{password_redis}")
    assert right.status_code == 202, right.get_data(as_text=True)
