"""Load as the worker measures it, against a real Redis fed by the real Celery producer."""

from __future__ import annotations

import uuid

import pytest
import redis

from tests.conftest import redis_db_url
from worker.celery_app import app
from worker.probes import live_probes
from worker.queues import jobs_running, priority_queue_names, queue_depth, queue_depth_by_priority

REDIS_URL = redis_db_url(13)


@pytest.fixture
def client() -> redis.Redis:
    r = redis.Redis.from_url(REDIS_URL)
    r.flushdb()
    yield r
    r.flushdb()


def test_load_counts_every_priority_list(client: redis.Redis) -> None:
    queue = f"probe-{uuid.uuid4().hex[:8]}"
    priorities = [0, 0, 3, 5, 5, 5, 9]
    with app.connection_for_write(REDIS_URL) as conn:
        for priority in priorities:
            app.send_task("worker.tasks.simplify_text", args=["x", {}], queue=queue, priority=priority, connection=conn)

    by_priority = queue_depth_by_priority(client, [queue])
    assert by_priority[0] == 2 and by_priority[3] == 1 and by_priority[5] == 3 and by_priority[9] == 1
    assert queue_depth(client, [queue]) == len(priorities)
    assert client.llen(queue) == 2, "a plain LLEN sees only the priority-0 list"
    assert client.llen(priority_queue_names(queue)[9]) == 1

    client.hset("unacked", mapping={"tag-1": "{}", "tag-2": "{}"})
    assert jobs_running(client) == 2
    probes = live_probes("cpu", client=client, queues=[queue])
    reading = probes.load()
    assert (reading.queued, reading.running, reading.total) == (7, 2, 9)


def test_memory_probe_reads_this_machine() -> None:
    reading = live_probes("cpu").memory()
    assert reading.pool == "system"
    assert 0 < reading.available_bytes <= reading.total_bytes
    assert 0.0 <= reading.used_fraction < 1.0
    assert reading.process_bytes > 10 * 1024**2
