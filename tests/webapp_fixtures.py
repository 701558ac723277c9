"""Fixtures for the web app's tests: a real Redis (DB 15), the app, its test client and fake worker states.

Test modules load them with `pytest_plugins = ["tests.webapp_fixtures"]` (and import nothing from here, so
pytest can rewrite its assertions).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from webapp import create_app
from worker.jobs import JOB_KEY
from worker.queues import priority_queue_names, queue_depth
from worker.status import publish

TEST_REDIS_URL = "redis://127.0.0.1:6379/15"
QUEUE = "simplify"

WORKER_STATE: dict[str, Any] = {
    "pid": 4242,
    "host": "test-host",
    "device": "cpu",
    "memory": {
        "pool": "system",
        "total_gb": 16.0,
        "available_gb": 8.5,
        "used_gb": 7.5,
        "used_fraction": 0.4688,
        "used_percent": "46.9%",
        "process_gb": 1.2,
    },
    "memory_status": "moderate",
    "capabilities": {"fp16": True, "int8": True, "int4": True, "int2": True},
    "recommended_level": "int8",
    "active_requests": 1,
    "current_models": [
        {"name": "gemma-3-270m", "level": "int4", "size_mb": 253.0, "access_count": 45, "status": "loaded"}
    ],
    "current_levels": {"gemma-3-270m": "int4"},
    "cache": {
        "current_size_mb": 253.0,
        "max_size_mb": 8000.0,
        "utilization": "3.2%",
        "models_cached": 1,
        "models": [{"name": "gemma-3-270m", "level": "int4", "size_mb": 253.0, "access_count": 45, "status": "loaded"}],
    },
    "models_available": ["gemma-3-270m", "tiny-test-model"],
    "last_job": None,
    "reoptimizations": 2,
    "jobs_done": 7,
    "cache_clear_seen": 0,
}


@pytest.fixture
def redis_db() -> Iterator[redis.Redis]:
    """Redis DB 15, empty before and after the test."""
    client = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"these tests need a Redis server at {TEST_REDIS_URL}: start one with `redis-server`")
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def make_app(redis_db: redis.Redis) -> Callable[..., Flask]:
    """Build an app on the test DB, with any setting overridden."""

    def build(**overrides: Any) -> Flask:
        return create_app({"TESTING": True, "REDIS_URL": TEST_REDIS_URL, **overrides})

    return build


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The app with its default settings on the test DB."""
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the default app."""
    return app.test_client()


@pytest.fixture
def fake_worker(redis_db: redis.Redis) -> Callable[..., dict[str, Any]]:
    """Publish a worker's state the way a live worker's heartbeat does (a real Redis write)."""

    def publish_state(name: str = "worker-a", **changes: Any) -> dict[str, Any]:
        state = copy.deepcopy(WORKER_STATE)
        state.update(changes)
        publish(redis_db, name, state)
        return state

    return publish_state


class Broker:
    """What the web app left in Redis: queue lists and job records."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def depth(self) -> int:
        """Jobs waiting in every priority list of the queue."""
        return queue_depth(self.client, [QUEUE])

    def lists(self) -> dict[int, int]:
        """Length of each priority list, by priority."""
        return {p: int(self.client.llen(name)) for p, name in enumerate(priority_queue_names(QUEUE))}

    def records(self) -> int:
        """How many job records exist."""
        return len(self.client.keys(JOB_KEY.format("*")))

    def nothing_queued(self) -> bool:
        """No message on the queue and no job record."""
        return self.depth() == 0 and self.records() == 0


@pytest.fixture
def broker(redis_db: redis.Redis) -> Broker:
    """The test DB's queue lists and job records."""
    return Broker(redis_db)


def check_error(response: Any, status: int, field: str | None) -> dict[str, Any]:
    """Assert the answer is the JSON error object with this status and field; return its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    assert set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["field"] == field, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body


ErrorCheck = Callable[[Any, int, "str | None"], dict[str, Any]]


@pytest.fixture
def api_error() -> ErrorCheck:
    """The JSON-error assertion: api_error(response, status, field) -> body."""
    return check_error


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll until the predicate holds or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
