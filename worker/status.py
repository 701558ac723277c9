"""Worker state in Redis: each worker publishes a heartbeat with a TTL; readers see only live ones.

The web app reads this module's keys, never a worker's memory: a worker that dies simply stops
refreshing its key and drops out of the status when the TTL runs out. A heartbeat is a WorkerState
(worker.contracts) with a version; one that does not parse (another release's) is logged and left out.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

import redis

from worker.contracts import ClearReport, WorkerState
from worker.presence import Presence

WORKER_KEY = "dq:worker:{}"
WORKERS_SET = "dq:workers"
CLEAR_GENERATION_KEY = "dq:cache:clear_generation"
CLEAR_ACKS_KEY = "dq:cache:clear_acks:{}"

log = logging.getLogger(__name__)


WORKERS = Presence(WORKER_KEY, WORKERS_SET, WorkerState, "worker")


def publish(client: redis.Redis, state: WorkerState, ttl: int) -> None:
    """Write one worker's state with a TTL (seconds) and list it among the workers."""
    WORKERS.publish(client, state.worker, state, ttl)


def withdraw(client: redis.Redis, name: str) -> None:
    """Remove a worker's state when it shuts down cleanly."""
    WORKERS.withdraw(client, name)


def live_workers(client: redis.Redis) -> list[WorkerState]:
    """State of every worker whose heartbeat is still fresh, by name; forgets dead ones."""
    return WORKERS.live(client)


def request_cache_clear(client: redis.Redis) -> int:
    """Ask every worker to clear its cache; returns the request's generation number."""
    return int(client.incr(CLEAR_GENERATION_KEY))


def clear_generation(client: redis.Redis) -> int:
    """The latest cache-clear request's generation (0 when none was made)."""
    raw = client.get(CLEAR_GENERATION_KEY)
    return int(raw) if raw else 0


def acknowledge_clear(client: redis.Redis, generation: int, name: str, report: ClearReport) -> None:
    """Record what a worker freed for a cache-clear request."""
    key = CLEAR_ACKS_KEY.format(generation)
    client.hset(key, name, report.model_dump_json())
    client.expire(key, 3600)


def clear_acknowledgements(client: redis.Redis, generation: int) -> dict[str, ClearReport]:
    """Workers that have carried out a cache-clear request, with what each freed."""
    raw = client.hgetall(CLEAR_ACKS_KEY.format(generation))
    return {(k.decode() if isinstance(k, bytes) else k): ClearReport.model_validate_json(v) for k, v in raw.items()}


class Heartbeat(threading.Thread):
    """Background thread that publishes a worker's state and carries out cache-clear requests.

    It runs beside the job so the status stays fresh and a clear request is served even while a
    long job holds the worker's only slot (the model in use is spared).
    """

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        snapshot: Callable[[int], WorkerState],
        clear_cache: Callable[[], ClearReport],
        seconds: float,
        ttl: int,
        on_beat: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name=f"heartbeat-{name}", daemon=True)
        self.client = client
        self.worker_name = name
        self.snapshot = snapshot
        self.clear_cache = clear_cache
        self.seconds = seconds
        self.ttl = ttl
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
            self.stopped.wait(self.seconds)

    def beat(self) -> None:
        """Renew the running job's lease, serve a pending cache-clear request, then publish the current state."""
        if self.on_beat is not None:
            self.on_beat()
        generation = clear_generation(self.client)
        if generation > self.seen_generation:
            acknowledge_clear(self.client, generation, self.worker_name, self.clear_cache())
            self.seen_generation = generation
        publish(self.client, self.snapshot(self.seen_generation), self.ttl)

    def stop(self) -> None:
        """Stop beating and withdraw this worker's state."""
        self.stopped.set()
        with contextlib.suppress(redis.RedisError):
            withdraw(self.client, self.worker_name)
