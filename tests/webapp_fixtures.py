"""Fixtures for the web app's tests: a real Redis (DB 15), the app, its test client and fake worker states.

Test modules load them with `pytest_plugins = ["tests.webapp_fixtures"]` (and import nothing from here, so
pytest can rewrite its assertions).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import emptied, redis_db_url
from tests.states import worker_state
from webapp import create_app
from worker.contracts import WorkerState
from worker.jobs import JOB_KEY
from worker.queues import priority_queue_names, queue_depth
from worker.status import publish

TEST_REDIS_URL = redis_db_url(15)
QUEUE = "simplify"
HEARTBEAT_TTL = 10


@pytest.fixture
def redis_db() -> Iterator[redis.Redis]:
    """Redis DB 15, empty before and after the test."""
    client = emptied(TEST_REDIS_URL)
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
def fake_worker(redis_db: redis.Redis) -> Callable[..., WorkerState]:
    """Publish a worker's state the way a live worker's heartbeat does (a real Redis write)."""

    def publish_state(name: str = "worker-a", **changes: Any) -> WorkerState:
        state = worker_state(name, **changes)
        publish(redis_db, state, HEARTBEAT_TTL)
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
