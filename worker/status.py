"""Worker state in Redis: each worker publishes a heartbeat with a TTL; readers see only live ones.

The web app reads this module's keys, never a worker's memory: a worker that dies simply stops
refreshing its key and drops out of the status when the TTL runs out.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

WORKER_KEY = "dq:worker:{}"
WORKERS_SET = "dq:workers"
CLEAR_GENERATION_KEY = "dq:cache:clear_generation"
CLEAR_ACKS_KEY = "dq:cache:clear_acks:{}"

log = logging.getLogger(__name__)


def heartbeat_seconds() -> float:
    """Seconds between heartbeats, from DYNAQUANT_HEARTBEAT_SECONDS."""
    return float(os.environ.get("DYNAQUANT_HEARTBEAT_SECONDS", "2"))


def heartbeat_ttl() -> int:
    """Seconds after which a silent worker counts as dead: a few missed heartbeats."""
    return max(int(heartbeat_seconds() * 4), 5)


def publish(client: redis.Redis, name: str, state: dict[str, Any]) -> None:
    """Write one worker's state with a TTL and list it among the workers."""
    payload = {**state, "worker": name, "heartbeat_at": time.time()}
    pipe = client.pipeline()
    pipe.set(WORKER_KEY.format(name), json.dumps(payload), ex=heartbeat_ttl())
    pipe.sadd(WORKERS_SET, name)
    pipe.execute()


def withdraw(client: redis.Redis, name: str) -> None:
    """Remove a worker's state when it shuts down cleanly."""
    pipe = client.pipeline()
    pipe.delete(WORKER_KEY.format(name))
    pipe.srem(WORKERS_SET, name)
    pipe.execute()


def live_workers(client: redis.Redis) -> list[dict[str, Any]]:
    """State of every worker whose heartbeat is still fresh, by name; forgets dead ones."""
    names = sorted(n.decode() if isinstance(n, bytes) else n for n in client.smembers(WORKERS_SET))
    if not names:
        return []
    values = client.mget([WORKER_KEY.format(n) for n in names])
    workers, dead = [], []
    for name, raw in zip(names, values, strict=False):
        if raw is None:
            dead.append(name)
        else:
            workers.append(json.loads(raw))
    if dead:
        client.srem(WORKERS_SET, *dead)
    return workers


def request_cache_clear(client: redis.Redis) -> int:
    """Ask every worker to clear its cache; returns the request's generation number."""
    return int(client.incr(CLEAR_GENERATION_KEY))


def clear_generation(client: redis.Redis) -> int:
    """The latest cache-clear request's generation (0 when none was made)."""
    raw = client.get(CLEAR_GENERATION_KEY)
    return int(raw) if raw else 0


def acknowledge_clear(client: redis.Redis, generation: int, name: str, report: dict[str, Any]) -> None:
    """Record what a worker freed for a cache-clear request."""
    key = CLEAR_ACKS_KEY.format(generation)
    client.hset(key, name, json.dumps(report))
    client.expire(key, 3600)


def clear_acknowledgements(client: redis.Redis, generation: int) -> dict[str, dict[str, Any]]:
    """Workers that have carried out a cache-clear request, with what each freed."""
    raw = client.hgetall(CLEAR_ACKS_KEY.format(generation))
    return {(k.decode() if isinstance(k, bytes) else k): json.loads(v) for k, v in raw.items()}


class Heartbeat(threading.Thread):
    """Background thread that publishes a worker's state and carries out cache-clear requests.

    It runs beside the job so the status stays fresh and a clear request is served even while a
    long job holds the worker's only slot (the model in use is spared).
    """

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        snapshot: Callable[[], dict[str, Any]],
        clear_cache: Callable[[], dict[str, Any]],
        on_beat: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name=f"heartbeat-{name}", daemon=True)
        self.client = client
        self.worker_name = name
        self.snapshot = snapshot
        self.clear_cache = clear_cache
        self.on_beat = on_beat
        self.stopped = threading.Event()
        self.seen_generation = 0

    def run(self) -> None:
        """Beat until stopped; Redis outages are logged and retried, never fatal."""
        try:
            self.seen_generation = clear_generation(self.client)
        except redis.RedisError:
            self.seen_generation = 0
        while not self.stopped.is_set():
            try:
                self.beat()
            except redis.RedisError as exc:
                log.warning("heartbeat could not reach Redis (%s); retrying", exc)
            except Exception:
                log.exception("heartbeat failed; retrying")
            self.stopped.wait(heartbeat_seconds())

    def beat(self) -> None:
        """Renew the running job's lease, serve a pending cache-clear request, then publish the current state."""
        if self.on_beat is not None:
            self.on_beat()
        generation = clear_generation(self.client)
        if generation > self.seen_generation:
            report = self.clear_cache()
            acknowledge_clear(self.client, generation, self.worker_name, report)
            self.seen_generation = generation
        publish(self.client, self.worker_name, {**self.snapshot(), "cache_clear_seen": self.seen_generation})

    def stop(self) -> None:
        """Stop beating and withdraw this worker's state."""
        self.stopped.set()
        with contextlib.suppress(redis.RedisError):
            withdraw(self.client, self.worker_name)
