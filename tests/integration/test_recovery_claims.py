"""The requeue claim on a real Redis, with real messages: sent by Celery's producer, taken by kombu's consumer.

A message taken without an ack sits in kombu's `unacked` hash, exactly as under a worker that then dies.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.conftest import emptied, redis_db_url
from tests.states import worker_state
from worker import status
from worker.celery_app import SIMPLIFY_TASK, app
from worker.contracts import JobSpec, JobStatus
from worker.jobs import HISTORY, LEASE_KEY, JobStore
from worker.queues import UNACKED_INDEX_KEY, UNACKED_KEY, list_for_priority, priority_queue_names
from worker.recovery import CEILING_KEY, Sweeper, host_ceiling
from worker.settings import Settings

REDIS_URL = redis_db_url(12)
DEAD = "worker1@host-a"
SETTINGS = Settings(heartbeat_seconds=0.2)  # a grace of 0.3 s before an orphan is claimed


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    r = emptied(REDIS_URL)
    yield r
    r.flushdb()


def taken_job(client: redis.Redis, queue: str, priority: int, level: str = "fp16") -> tuple[str, Any]:
    """A job sent by Celery, taken by a consumer that never acks it, started by DEAD and running `level`."""
    job_id = str(uuid.uuid4())
    store = JobStore(client)
    store.create(job_id, JobSpec(text="x", grade_level=5, priority=priority, model="m", max_tokens=16))
    with app.connection_for_write(REDIS_URL) as conn:
        app.send_task(SIMPLIFY_TASK, args=[job_id, {}], task_id=job_id, queue=queue, priority=priority, connection=conn)
    connection = app.connection_for_read(REDIS_URL)
    channel = connection.default_channel
    message = None
    deadline = time.monotonic() + 5
    while message is None and time.monotonic() < deadline:
        channel.queue_declare(queue, passive=False)
        message = channel.basic_get(queue, no_ack=False)
    assert message is not None and message.headers["id"] == job_id
    assert client.hexists(UNACKED_KEY, message.delivery_tag)
    assert store.start(job_id, DEAD, 5, message.delivery_tag) == ("running", 1)
    store.set_stage(job_id, "running", "m", level)
    return job_id, (connection, message)


def dies(client: redis.Redis, job_id: str) -> None:
    """What a dead worker leaves: its lease runs out (and it never published a heartbeat here)."""
    client.delete(LEASE_KEY.format(job_id))


def test_two_sweepers_requeue_a_dead_workers_job_once_at_its_priority(client: redis.Redis) -> None:
    queue = f"claims-{uuid.uuid4().hex[:6]}"
    job_id, (connection, message) = taken_job(client, queue, priority=3)
    dies(client, job_id)
    sweepers = [Sweeper(redis.Redis.from_url(REDIS_URL), SETTINGS, me=f"w{i}@host-b") for i in range(4)]
    for sweeper in sweepers:
        assert sweeper.sweep() == [], "an orphan is claimed only after the grace"
    time.sleep(0.35)
    barrier = threading.Barrier(len(sweepers))
    claimed: list[list[str]] = []

    def race(sweeper: Sweeper) -> None:
        barrier.wait()
        claimed.append(sweeper.sweep())

    threads = [threading.Thread(target=race, args=(s,)) for s in sweepers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(c) for c in claimed) == [0, 0, 0, 1], claimed
    assert client.hlen(UNACKED_KEY) == 0 and client.zcard(UNACKED_INDEX_KEY) == 0
    lengths = {name: client.llen(name) for name in priority_queue_names(queue)}
    assert lengths[list_for_priority(queue, 3)] == 1 and sum(lengths.values()) == 1, lengths
    record = JobStore(client).get(job_id)
    assert record is not None and record.status == JobStatus.QUEUED and record.worker is None
    [event] = record.history
    assert (event.reason, event.worker, event.attempt, event.level) == ("worker lost", DEAD, 1, "fp16")
    assert (event.phase, event.model, event.ceiling) == ("running", "m", "int8")
    assert event.detected_by.endswith("@host-b"), "a live worker's sweep claimed it"
    ceiling = host_ceiling(client, "host-a", "m")
    assert record.ceiling == "int8" and ceiling is not None and ceiling.level == "int8"

    again = connection.default_channel.basic_get(queue, no_ack=True)
    assert again is not None and again.headers["id"] == job_id and again.delivery_info["redelivered"] is True
    assert JobStore(client).start(job_id, "w0@host-b", 5)[0] == "running", "the next worker runs it"
    connection.release()
    del message


def test_a_living_worker_is_never_robbed(client: redis.Redis) -> None:
    queue = f"claims-{uuid.uuid4().hex[:6]}"
    job_id, (connection, _) = taken_job(client, queue, priority=5)
    sweeper = Sweeper(client, SETTINGS, me="other@host-b")
    status.publish(client, worker_state(DEAD), 30)  # heartbeat fresh, lease held: a slow job, nothing to do
    for _ in range(3):
        assert sweeper.sweep() == []
        time.sleep(0.2)
    dies(client, job_id)  # lease gone but the heartbeat still beats (a Redis blink): still nothing
    for _ in range(3):
        assert sweeper.sweep() == []
        time.sleep(0.2)
    record = JobStore(client).get(job_id)
    assert record is not None and record.status == JobStatus.RUNNING and record.history == []
    assert Sweeper(client, SETTINGS, me=DEAD).sweep(dead=[]) == [], "a worker never claims its own job"
    client.set(LEASE_KEY.format(job_id), "someone-else@host-c", ex=5)
    assert sweeper.sweep(dead=[DEAD]) == [], "even a known-dead holder's job is left to a live lease holder"
    assert client.hlen(UNACKED_KEY) == 1
    client.delete(LEASE_KEY.format(job_id))
    assert sweeper.sweep(dead=[DEAD]) == [job_id], "a supervisor that saw the process exit claims at once"
    connection.release()


def test_the_ceiling_keeps_the_lowest_level_and_expires(client: redis.Redis) -> None:
    settings = SETTINGS.override(crash_ceiling_seconds=30)
    first, (c1, _) = taken_job(client, f"claims-{uuid.uuid4().hex[:6]}", priority=5, level="int4")
    dies(client, first)
    assert Sweeper(client, settings).sweep(dead=[DEAD]) == [first]
    second, (c2, _) = taken_job(client, f"claims-{uuid.uuid4().hex[:6]}", priority=5, level="fp16")
    dies(client, second)
    assert Sweeper(client, settings).sweep(dead=[DEAD]) == [second]
    ceiling = host_ceiling(client, "host-a", "m")
    assert ceiling is not None and ceiling.level == "int2", "a later, higher loss does not lift the ceiling"
    assert 0 < client.ttl(CEILING_KEY.format("host-a", "m")) <= 30
    [event] = HISTORY.validate_json(client.hget(f"dq:job:{second}", "history") or b"[]")
    assert event.ceiling == "int8" and event.detected_by == "supervisor"
    c1.release()
    c2.release()
