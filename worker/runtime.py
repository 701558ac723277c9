"""A worker process's wiring: Redis, the live probes, the model loader and the heartbeat."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis

import celeryconfig
from worker import recovery, status
from worker.jobs import JobStore
from worker.policy import memory_band
from worker.probes import LoadReading, live_probes
from worker.quantization import DynamicQuantizationManager, set_quantization_manager
from worker.variants import thread_count

if TYPE_CHECKING:
    from worker.model_loader import ModelLoader

log = logging.getLogger(__name__)


def last_known_load(read: Callable[[], LoadReading]) -> Callable[[], LoadReading]:
    """The load probe, answering with its last reading while Redis is unreachable (a job never fails for it)."""
    last = [LoadReading(0, 0)]

    def read_or_last() -> LoadReading:
        try:
            last[0] = read()
        except redis.RedisError as exc:
            log.warning("could not read the queue load from Redis (%s); using the last reading", exc)
        return last[0]

    return read_or_last


class WorkerRuntime:
    """Everything one worker process holds between jobs."""

    def __init__(self, name: str, client: redis.Redis | None = None) -> None:
        self.name = name
        # Timeouts so a dead or unreachable Redis fails a call (which is retried) instead of hanging it.
        self.client = client or redis.Redis.from_url(
            celeryconfig.redis_url, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30
        )
        self.store = JobStore(self.client)
        probes = live_probes(client=self.client, queues=[celeryconfig.task_default_queue])
        probes.load = last_known_load(probes.load)
        self.manager = DynamicQuantizationManager(probes=probes)
        set_quantization_manager(self.manager)
        from worker.model_loader import get_model_loader

        self.loader: ModelLoader = get_model_loader()
        self.loader.stage_listener = self.record_stage
        self.sweeper = recovery.Sweeper(self.client, me=name)
        self.started_at = time.time()
        self.active_job: str | None = None
        self.last_job: dict[str, Any] | None = None
        self.jobs_done = 0
        self._lock = threading.Lock()
        self.heartbeat = status.Heartbeat(self.client, name, self.snapshot, self.clear_cache, self.on_beat)

    def start(self) -> None:
        """Begin publishing this worker's state."""
        self.heartbeat.start()

    def stop(self) -> None:
        """Stop publishing and remove this worker from the status."""
        self.heartbeat.stop()

    def begin_job(self, job_id: str) -> None:
        """Note the job this worker now runs."""
        with self._lock:
            self.active_job = job_id

    def end_job(self, summary: dict[str, Any]) -> None:
        """Note the job this worker just finished."""
        with self._lock:
            self.active_job = None
            self.last_job = summary
            self.jobs_done += 1

    def on_beat(self) -> None:
        """A heartbeat's work besides publishing: renew the running job's lease, then requeue dead workers' jobs."""
        self.renew_lease()
        try:
            self.sweeper.sweep()
        except redis.RedisError as exc:
            log.warning("could not sweep for jobs of dead workers: %s", exc)

    def renew_lease(self) -> None:
        """Keep the running job leased to this worker while it is alive."""
        with self._lock:
            active = self.active_job
        if active is not None:
            self.store.renew_lease(active, self.name, status.heartbeat_ttl())

    def record_stage(self, phase: str, model: str, level: str) -> None:
        """Note in the running job's record what this worker loads or runs, before it does (a death is traced to it)."""
        with self._lock:
            active = self.active_job
        if active is None:
            return
        try:
            self.store.set_stage(active, phase, model, level)
        except redis.RedisError as exc:
            log.warning("could not note the stage of job %s: %s", active, exc)

    def ceiling_for(self, job_id: str, model: str) -> tuple[str | None, list[str]]:
        """The level a job may run at most, and why: its own (after its worker died) and this host's for the model."""
        reasons: list[str] = []
        own = self.store.ceiling(job_id)
        if own:
            reasons.append(f"at most {own}: an earlier attempt's worker died on a higher level")
        shared = recovery.host_ceiling(self.client, recovery.host_of(self.name), model)
        if shared:
            until = time.strftime("%H:%M:%S", time.localtime(shared["until"]))
            reasons.append(f"at most {shared['level']} on this host until {until}: {shared['reason']}")
        return recovery.most_restrictive(own, shared["level"] if shared else None), reasons

    def clear_cache(self) -> dict[str, Any]:
        """Free every cached model no job is using; say what was freed."""
        freed_mb = self.loader.clear_cache()
        return {"freed_mb": freed_mb, "at": time.time()}

    def snapshot(self) -> dict[str, Any]:
        """This worker's state as the status API shows it."""
        reading = self.manager.probes.memory()
        load = self.manager.probes.load()
        cache = self.loader.cache.stats()
        models = cache["models"]
        with self._lock:
            active, last, done = self.active_job, self.last_job, self.jobs_done
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "threads": thread_count(),
            "ceilings": recovery.host_ceilings(self.client, recovery.host_of(self.name), self.loader.registry.names()),
            "started_at": self.started_at,
            "device": self.manager.device,
            "memory": reading.as_dict(),
            "memory_status": memory_band(reading.used_fraction, self.manager.thresholds),
            "capabilities": self.manager.capabilities,
            "thresholds": self.manager.get_status()["thresholds"],
            "recommended_level": self.manager.select_level(reading.used_fraction, load.total),
            "active_requests": 1 if active else 0,
            "active_job": active,
            "queue": {"queued": load.queued, "running": load.running},
            "current_models": [
                {k: m.get(k) for k in ("name", "level", "size_mb", "access_count", "status", "last_used")}
                for m in models
            ],
            "current_levels": dict(self.manager.stabilizer.current),
            "cache": cache,
            "models_available": self.loader.registry.names(),
            "last_job": last,
            "jobs_done": done,
            "reoptimizations": self.loader.reoptimizations,
        }


_runtime: WorkerRuntime | None = None
_runtime_lock = threading.Lock()


def get_runtime(name: str | None = None) -> WorkerRuntime:
    """This process's runtime, built on first use."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = WorkerRuntime(name or f"worker@{socket.gethostname()}:{os.getpid()}")
        return _runtime


def shutdown_runtime() -> None:
    """Stop the heartbeat of this process's runtime, if it was built."""
    global _runtime
    with _runtime_lock:
        if _runtime is not None:
            _runtime.stop()
            _runtime = None
