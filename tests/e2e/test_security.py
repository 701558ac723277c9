"""No one controls the service without its secrets: JSON-only Celery, Redis passwords, the API token, random ids.

Real worker and gunicorn processes; a private redis-server where a password is needed.
"""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from kombu import Connection

from tests.e2e.conftest import PrivateServices, Service, wait_until
from worker.celery_app import SIMPLIFY_TASK, app
from worker.queues import queue_depth

pytestmark = [pytest.mark.e2e, pytest.mark.model]

JOB = {
    "text": "Water boils at one hundred degrees Celsius at sea level, and it freezes at zero degrees.",
    "grade_level": 4,
    "max_tokens": 4,
    "force_quantization": "int2",
}


class CreatesFile:
    """A pickle payload whose unpickling opens (so creates) a file: proof that code ran on deserialisation."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def pickled_task_body(marker: Path) -> bytes:
    """The body of a Celery task message, (args, kwargs, embed), pickled with the side-effect payload inside."""
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    return pickle.dumps(([str(uuid.uuid4()), {"evil": CreatesFile(marker)}], {}, embed))


def test_a_pickled_message_on_the_queue_is_refused_not_run(service: Service, tmp_path: Path) -> None:
    control = tmp_path / "control-ran"
    pickle.loads(pickled_task_body(control))  # the payload is live: unpickling it runs code
    assert control.exists()

    worker = service.start_worker("w1", {"DYNAQUANT_THREADS": "1"})
    service.start_web()
    marker = tmp_path / "pwned"
    task_id = str(uuid.uuid4())
    message = app.amqp.as_task_v2(task_id, SIMPLIFY_TASK, args=[task_id, {}], origin="attacker")
    with Connection(service.redis_url) as conn:
        conn.Producer().publish(
            pickled_task_body(marker),
            routing_key=service.queue,
            exchange="",
            serializer=None,
            content_type="application/x-python-serialize",
            content_encoding="binary",
            headers=message.headers,
            **message.properties,
        )
    log = service.logs / "w1.log"
    refused = "Refusing to deserialize untrusted content of type pickle"
    wait_until(lambda: refused in log.read_text(errors="replace"), 30, "the worker to refuse the pickled message")
    wait_until(
        lambda: queue_depth(service.redis, [service.queue]) == 0 and service.redis.hlen("unacked") == 0,
        30,
        "the pickled message to leave the queue",
    )
    text = log.read_text(errors="replace")
    assert "kombu.exceptions.ContentDisallowed" in text and "discarded" in text
    assert not marker.exists(), "the pickle payload ran inside the worker"
    assert worker.poll() is None

    response = requests.post(service.url("/api/v1/jobs"), json=JOB, timeout=10)
    assert response.status_code == 202
    assert service.wait_job(response.json()["job_id"])["status"] == "succeeded"
    refusal = next(line for line in text.splitlines() if refused in line)
    print(f"\n[pickle] refused: {refusal.strip()[:200]!r}; no file created; worker alive and serving")


def test_a_redis_password_in_redis_url_works_and_a_wrong_one_gets_a_503_that_hides_it(
    private: PrivateServices,
) -> None:
    password, wrong = "s3cret-Redis-pw", "not-the-pw-42"
    server = private.redis_server(password=password)
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=server.port).ping()  # the server refuses clients without the password

    svc = private.service(server.url())
    svc.start_worker("w1", {"DYNAQUANT_THREADS": "1"})
    svc.start_web()
    submitted = requests.post(svc.url("/api/v1/jobs"), json=JOB, timeout=10)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    assert svc.wait_job(job_id)["status"] == "succeeded"
    for name in ("w1", "web"):
        assert password not in (svc.logs / f"{name}.log").read_text(errors="replace"), f"the password leaked: {name}"

    bad = private.service(server.url(password=wrong))
    bad.start_web()
    for method, path, body in (
        ("GET", f"/api/v1/jobs/{job_id}", None),
        ("POST", "/api/v1/jobs", JOB),
        ("GET", "/api/v1/quantization/status", None),
    ):
        response = requests.request(method, bad.url(path), json=body, timeout=15)
        assert response.status_code == 503, (path, response.status_code, response.text)
        error = response.json()["error"]
        assert error["code"] == "redis_auth_failed", (path, response.text)
        assert wrong not in response.text and password not in response.text and "Traceback" not in response.text
        assert ":***@" in error["message"]
    ready = requests.get(bad.url("/readyz"), timeout=15)
    assert ready.status_code == 503 and wrong not in ready.text
    web_log = (bad.logs / "web.log").read_text(errors="replace")
    assert wrong not in web_log, "the password leaked into the web log"
    print(f"\n[redis password] job {job_id} ran with the password; a wrong one: 503 {error['message']!r}")


def test_the_api_token_guards_changes_and_leaves_reads_open(service: Service) -> None:
    token = "t0ken-" + uuid.uuid4().hex
    service.start_web({"API_TOKEN": token})
    good = {"Authorization": f"Bearer {token}"}
    refusals = {
        "none": {},
        "wrong": {"Authorization": "Bearer not-the-token"},
        "basic": {"Authorization": f"Basic {token}"},
        "bare": {"Authorization": token},
    }

    def refused(method: str, path: str, body: Any = None) -> None:
        for why, headers in refusals.items():
            response = requests.request(method, service.url(path), json=body, headers=headers, timeout=10)
            assert response.status_code == 401, (method, path, why, response.text)
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["WWW-Authenticate"].startswith("Bearer")

    batch = {"items": [JOB, JOB], "defaults": {"grade_level": 5}}
    refused("POST", "/api/v1/jobs", JOB)
    refused("POST", "/api/v1/batches", batch)
    assert queue_depth(service.redis, [service.queue]) == 0, "a refused request queued something"
    ids = []
    for _ in range(10):
        response = requests.post(service.url("/api/v1/jobs"), json=JOB, headers=good, timeout=10)
        assert response.status_code == 202, response.text
        ids.append(response.json()["job_id"])
    response = requests.post(service.url("/api/v1/batches"), json=batch, headers=good, timeout=10)
    assert response.status_code == 202, response.text
    batch_id = response.json()["batch_id"]
    ids += [batch_id, *response.json()["job_ids"]]

    refused("DELETE", f"/api/v1/jobs/{ids[0]}")
    assert requests.get(service.url(f"/api/v1/jobs/{ids[0]}"), timeout=10).json()["status"] == "queued"
    assert requests.delete(service.url(f"/api/v1/jobs/{ids[0]}"), headers=good, timeout=10).status_code == 200
    refused("POST", "/api/v1/quantization/cache/clear")
    assert requests.post(service.url("/api/v1/quantization/cache/clear"), headers=good, timeout=10).status_code == 200

    reads = [
        ("GET", f"/api/v1/jobs/{ids[1]}"),
        ("GET", "/api/v1/jobs"),
        ("GET", f"/api/v1/batches/{batch_id}"),
        ("GET", "/api/v1/quantization/status"),
        ("GET", "/api/v1/quantization/memory"),
        ("GET", "/api/v1/quantization/cache"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
    ]
    for method, path in reads:
        response = requests.request(method, service.url(path), timeout=10)
        assert response.status_code == 200, (path, response.status_code, response.text)
    calculate = {"model_size_params": 7.0}
    response = requests.post(service.url("/api/v1/quantization/calculate"), json=calculate, timeout=10)
    assert response.status_code == 200, response.text

    parsed = [uuid.UUID(one) for one in ids]
    assert all(u.version == 4 and str(u) == one for u, one in zip(parsed, ids, strict=True))
    assert len(set(ids)) == len(ids)
    print(
        f"\n[token] 401 for POST jobs/batches, DELETE job, POST cache/clear without the token (4 bad headers each); "
        f"{len(reads) + 1} reads open; {len(ids)} ids, all UUID4 and distinct"
    )


def test_flower_with_basic_auth_as_in_compose_refuses_anonymous_users(service: Service) -> None:
    service.start_worker("w1", {"DYNAQUANT_THREADS": "1"})
    user, password = "admin", "fl0wer-" + uuid.uuid4().hex[:8]
    flower = service.start_flower(basic_auth=f"{user}:{password}")
    for path in ("/", "/workers", "/api/workers", "/api/tasks"):
        assert requests.get(flower + path, timeout=10).status_code == 401, path
        assert requests.get(flower + path, auth=(user, "wrong"), timeout=10).status_code == 401, path
    workers = wait_until(
        lambda: requests.get(f"{flower}/api/workers?refresh=1", auth=(user, password), timeout=10).json(),
        30,
        "Flower to list the worker",
    )
    assert "w1@e2e" in workers
    assert requests.get(flower + "/", auth=(user, password), timeout=10).status_code == 200
    print("\n[flower] 401 without or with a wrong password on /, /workers, /api/workers, /api/tasks; 200 with it")
