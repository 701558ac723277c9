"""POST/GET/DELETE /api/v1/jobs against a real Redis: what is queued, where, and what is refused."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from tests.states import job_result
from worker.jobs import JobStore
from worker.settings import DEFAULT_MODEL, get_settings

if TYPE_CHECKING:
    from tests.webapp_fixtures import Broker, ErrorCheck

pytest_plugins = ["tests.webapp_fixtures"]

JOB = {"text": "Photosynthesis converts light energy into chemical energy.", "grade_level": 5}


def test_submit_queues_the_job_and_records_it(client: FlaskClient, broker: Broker) -> None:
    response = client.post("/api/v1/jobs", json={**JOB, "subject": "Science", "task_priority": "quality"})
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "queued"
    assert body["status_url"] == f"/api/v1/jobs/{body['job_id']}"
    assert response.headers["Location"] == body["status_url"]
    assert broker.depth() == 1

    job = client.get(body["status_url"]).get_json()
    assert job["job_id"] == body["job_id"]
    assert job["status"] == "queued"
    assert job["request"]["subject"] == "Science" and job["request"]["task_priority"] == "quality"
    assert job["request"]["model"] == DEFAULT_MODEL
    assert job["created_at"] > 0 and job["started_at"] is None and job["result"] is None


def test_priority_picks_the_kombu_list(client: FlaskClient, redis_db: redis.Redis) -> None:
    assert client.post("/api/v1/jobs", json={**JOB, "priority": 0}).status_code == 202
    assert client.post("/api/v1/jobs", json={**JOB, "priority": 9}).status_code == 202
    assert client.post("/api/v1/jobs", json=JOB).status_code == 202
    assert redis_db.llen("simplify") == 1
    assert redis_db.llen("simplify\x06\x169") == 1
    assert redis_db.llen("simplify\x06\x165") == 1, "no priority means the default, 5"
    message = json.loads(redis_db.lindex("simplify", 0) or b"{}")
    assert message["headers"]["task"] == "worker.tasks.simplify_text"
    assert message["properties"]["priority"] == 0


def test_the_task_carries_the_job_id_and_the_record_the_spec(client: FlaskClient, redis_db: redis.Redis) -> None:
    job_id = client.post("/api/v1/jobs", json={**JOB, "max_tokens": 64}).get_json()["job_id"]
    message = json.loads(redis_db.lindex("simplify\x06\x165", 0) or b"{}")
    assert message["headers"]["id"] == job_id
    assert message["content-type"] == "application/json"
    args, _, _ = json.loads(base64.b64decode(message["body"]))
    assert args == [job_id]
    stored = JobStore(redis_db).spec(job_id)
    assert stored.max_tokens == 64 and stored.text == JOB["text"]


def test_integral_floats_count_as_integers(client: FlaskClient) -> None:
    response = client.post("/api/v1/jobs", json={**JOB, "grade_level": 5.0, "priority": 8.0})
    assert response.status_code == 202
    assert client.get(response.get_json()["status_url"]).get_json()["priority"] == 8


BAD_VALUES: dict[str, list[Any]] = {
    "grade_level": [0, 13, "5", 5.5, True],
    "task_priority": ["fastest"],
    "min_quantization": ["int3"],
    "force_quantization": ["fp32"],
    "priority": [10, -1, None, 2.5],
    "max_tokens": [0, 100000],
    "model": ["no-such-model", 0, False],
    "subject": ["", "x" * 101, "\ud800"],
    "colour": ["blue"],
}
BAD_JOBS: list[tuple[dict[str, Any], str]] = [
    ({"grade_level": 5}, "text"),
    ({"text": "   ", "grade_level": 5}, "text"),
    ({"text": 42, "grade_level": 5}, "text"),
    ({"text": "\ud800 lone surrogate", "grade_level": 5}, "text"),
    ({"text": "fine"}, "grade_level"),
    *[({**JOB, field: value}, field) for field, values in BAD_VALUES.items() for value in values],
]


@pytest.mark.parametrize(("payload", "field"), BAD_JOBS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_JOBS)])
def test_bad_input_names_the_field_and_queues_nothing(
    client: FlaskClient, payload: dict[str, Any], field: str, broker: Broker, api_error: ErrorCheck
) -> None:
    body = json.dumps(payload)
    api_error(client.post("/api/v1/jobs", data=body, content_type="application/json"), 400, field)
    assert broker.nothing_queued()


def test_text_over_the_limit_is_refused(client: FlaskClient, broker: Broker, api_error: ErrorCheck) -> None:
    too_long = "a" * (get_settings().max_text_chars + 1)
    body = api_error(client.post("/api/v1/jobs", json={**JOB, "text": too_long}), 400, "text")
    assert "limit" in body["error"]["message"]
    assert broker.nothing_queued()


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        ("not json", "application/json", 400),
        ("", "application/json", 400),
        ("[1, 2]", "application/json", 400),
        ('{"text": NaN}', "application/json", 400),
        ("[" * 100000, "application/json", 400),
        ('{"text": "a", "grade_level": 3}', "text/plain", 415),
        ("text=a&grade_level=3", "application/x-www-form-urlencoded", 415),
        ('{"text": "a", "grade_level": 3}', None, 415),
    ],
    ids=["garbage", "empty", "array", "nan", "deep", "text-plain", "form", "no-content-type"],
)
def test_a_body_that_is_not_a_json_object_is_refused(
    client: FlaskClient, data: str, content_type: str | None, status: int, broker: Broker, api_error: ErrorCheck
) -> None:
    response = client.post("/api/v1/jobs", data=data, content_type=content_type)
    api_error(response, status, "body")
    assert broker.nothing_queued()


def test_a_model_from_a_live_worker_or_the_models_file_is_accepted(
    make_app: Callable[..., Flask], fake_worker: Callable[..., dict[str, Any]], tmp_path: Any, api_error: ErrorCheck
) -> None:
    models = tmp_path / "models.json"
    models.write_text(json.dumps({"qwen-7b": {"gguf": "/models/qwen.gguf"}}))
    client = make_app(MODELS_FILE=str(models)).test_client()
    api_error(client.post("/api/v1/jobs", json={**JOB, "model": "tiny-test-model"}), 400, "model")
    fake_worker("worker-a")
    assert client.post("/api/v1/jobs", json={**JOB, "model": "tiny-test-model"}).status_code == 202
    assert client.post("/api/v1/jobs", json={**JOB, "model": "qwen-7b"}).status_code == 202


def test_unknown_job_is_404(client: FlaskClient, api_error: ErrorCheck) -> None:
    api_error(client.get("/api/v1/jobs/00000000-0000-4000-8000-000000000000"), 404, "job_id")
    api_error(client.get("/api/v1/jobs/" + "x" * 500), 404, "job_id")
    api_error(client.delete("/api/v1/jobs/00000000-0000-4000-8000-000000000000"), 404, "job_id")


def test_recent_jobs_newest_first(client: FlaskClient, api_error: ErrorCheck) -> None:
    ids = [client.post("/api/v1/jobs", json=JOB).get_json()["job_id"] for _ in range(3)]
    body = client.get("/api/v1/jobs?limit=2").get_json()
    assert body["count"] == 2
    assert [j["job_id"] for j in body["jobs"]] == ids[:0:-1]
    assert client.get("/api/v1/jobs").get_json()["count"] == 3
    for bad in ("0", "501", "x", "-1", "1.5", "²"):
        api_error(client.get(f"/api/v1/jobs?limit={bad}"), 400, "limit")


def test_cancel_a_queued_job(client: FlaskClient, api_error: ErrorCheck) -> None:
    job_id = client.post("/api/v1/jobs", json=JOB).get_json()["job_id"]
    response = client.delete(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200
    assert response.get_json() == {"job_id": job_id, "status": "cancelled"}
    job = client.get(f"/api/v1/jobs/{job_id}").get_json()
    assert job["status"] == "cancelled" and job["finished_at"] is not None
    again = api_error(client.delete(f"/api/v1/jobs/{job_id}"), 409, None)
    assert again["status"] == "cancelled" and "already cancelled" in again["error"]["message"]


def test_cancel_a_running_job(client: FlaskClient, redis_db: redis.Redis) -> None:
    job_id = client.post("/api/v1/jobs", json=JOB).get_json()["job_id"]
    JobStore(redis_db).start(job_id, "worker-a")
    assert client.delete(f"/api/v1/jobs/{job_id}").status_code == 200
    assert client.get(f"/api/v1/jobs/{job_id}").get_json()["status"] == "cancelled"


def test_cancel_a_finished_job_is_409(client: FlaskClient, redis_db: redis.Redis, api_error: ErrorCheck) -> None:
    job_id = client.post("/api/v1/jobs", json=JOB).get_json()["job_id"]
    store = JobStore(redis_db)
    store.start(job_id, "worker-a")
    store.succeed(job_id, job_result(level="int4"))
    body = api_error(client.delete(f"/api/v1/jobs/{job_id}"), 409, None)
    assert body["status"] == "succeeded" and "succeeded" in body["error"]["message"]
    job = client.get(f"/api/v1/jobs/{job_id}").get_json()
    assert job["status"] == "succeeded" and job["result"]["level"] == "int4"


def test_method_not_allowed_is_json(client: FlaskClient, api_error: ErrorCheck) -> None:
    response = client.put("/api/v1/jobs")
    api_error(response, 405, None)
    assert "POST" in response.headers["Allow"]
    api_error(client.get("/no/such/page"), 404, None)


def test_model_names_are_read_once_a_heartbeat_and_again_for_a_name_not_among_them(
    client: FlaskClient, fake_worker: Callable[..., Any], api_error: ErrorCheck, monkeypatch: pytest.MonkeyPatch
) -> None:
    from webapp import catalog

    reads: list[int] = []
    read = catalog.live_workers
    monkeypatch.setattr(catalog, "live_workers", lambda redis_client: reads.append(1) or read(redis_client))
    for _ in range(5):
        assert client.post("/api/v1/jobs", json=JOB).status_code == 202
    assert len(reads) == 1, "five POSTs within a heartbeat read the workers' states once"
    fake_worker(models_available=["qwen-7b"])  # a worker that just came up offers a new model
    assert client.post("/api/v1/jobs", json={**JOB, "model": "qwen-7b"}).status_code == 202
    assert len(reads) == 2, "a name not among those read is looked up again before it is refused"
    api_error(client.post("/api/v1/jobs", json={**JOB, "model": "nope"}), 400, "model")
