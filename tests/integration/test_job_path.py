"""One job's path through Redis: checked once at the door, its text stored once (the message carries its id), run
by a worker from its record, and read back without being checked again."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from tests.conftest import Readings, redis_db_url
from tests.integration.conftest import PARAGRAPH
from webapp import create_app
from worker.contracts import JobRequest, JobSpec
from worker.jobs import JOB_KEY
from worker.model_loader import ModelLoader
from worker.queues import list_for_priority
from worker.runtime import WorkerRuntime
from worker.settings import SMALL_MODEL
from worker.status import publish
from worker.tasks import run_job

MakeLoader = Callable[..., tuple[ModelLoader, Readings]]
MakeRuntime = Callable[..., WorkerRuntime]


class Counting:
    """A model's validator that counts its calls (every validation of the model goes through it)."""

    def __init__(self, inner: Any, calls: list[str], name: str) -> None:
        self.inner, self.calls, self.name = inner, calls, name

    def __getattr__(self, attribute: str) -> Any:
        found = getattr(self.inner, attribute)
        if not attribute.startswith("validate"):
            return found

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(self.name)
            return found(*args, **kwargs)

        return counted


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every validation of a job's request or spec, by model name, while the test runs."""
    calls: list[str] = []
    for model in (JobRequest, JobSpec):
        monkeypatch.setattr(
            model, "__pydantic_validator__", Counting(model.__pydantic_validator__, calls, model.__name__)
        )
    yield calls


def test_a_job_is_checked_once_and_its_text_stored_once(
    make_loader: MakeLoader, make_runtime: MakeRuntime, worker_redis: redis.Redis, validations: list[str]
) -> None:
    loader, _ = make_loader(default_model=SMALL_MODEL)
    runtime = make_runtime(loader, shadow_share=0.0, default_model=SMALL_MODEL)
    publish(worker_redis, runtime.snapshot(), 30)  # a live worker that offers the small model
    url = redis_db_url(12)
    client = create_app({"TESTING": True, "REDIS_URL": url, "CELERY_BROKER_URL": url}).test_client()
    text = " ".join([PARAGRAPH] * 8)  # about 2,000 characters
    body = {"text": text, "grade_level": 5, "model": SMALL_MODEL, "max_tokens": 8, "force_quantization": "int4"}
    job_id = client.post("/api/v1/jobs", json=body).get_json()["job_id"]
    assert validations == ["JobRequest"]

    message = json.loads(worker_redis.lrange(list_for_priority(runtime.settings.queue, 5), 0, -1)[0])
    args = json.loads(base64.b64decode(message["body"]))[0]
    assert args == [job_id], "the message carries the job's id; its text is in the record only"
    record_bytes = int(worker_redis.memory_usage(JOB_KEY.format(job_id)) or 0)
    assert len(json.dumps(message)) < 2_000 < len(text) < record_bytes

    outcome = run_job(runtime, job_id, *args[1:])  # what the task does with the message's arguments
    assert outcome["status"] == "succeeded", outcome
    for _ in range(3):
        job = client.get(f"/api/v1/jobs/{job_id}").get_json()
        assert job["status"] == "succeeded" and job["request"]["text"] == text
    assert validations == ["JobRequest"], "the worker and every GET read the stored request, no second check"
