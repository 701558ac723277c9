"""A worker process's wiring: its settings, Redis, the live probes, the model loader and the heartbeat."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis

from worker import recovery, status
from worker.contracts import (
    AppliedCeiling,
    ClearReport,
    JobResult,
    JobSpec,
    JobSummary,
    LoadReading,
    Phase,
    WorkerState,
)
from worker.errors import DynaquantError
from worker.idle import IdleWork
from worker.jobs import JobStore
from worker.policy import Request
from worker.probes import live_probes
from worker.profiles import ProfileStore
from worker.quantization import DynamicQuantizationManager, set_quantization_manager
from worker.retry_stats import AdaptiveBudget
from worker.settings import Settings, get_settings

if TYPE_CHECKING:
    from worker.model_loader import ModelLoader

log = logging.getLogger(__name__)


def last_known_load(read: Callable[[], LoadReading]) -> Callable[[], LoadReading]:
    """The load probe, answering with its last reading while Redis is unreachable (a job never fails for it)."""
    last = [LoadReading(queued=0, running=0)]

    def read_or_last() -> LoadReading:
        try:
            last[0] = read()
        except redis.RedisError as exc:
            log.warning("could not read the queue load from Redis (%s); using the last reading", exc)
        return last[0]

    return read_or_last


class WorkerRuntime:
    """Everything one worker process holds between jobs."""

    def __init__(
        self,
        name: str,
        client: redis.Redis | None = None,
        settings: Settings | None = None,
        loader: ModelLoader | None = None,
    ) -> None:
        self.name = name
        self.settings = settings = settings or get_settings()
        # Timeouts so a dead or unreachable Redis fails a call (which is retried) instead of hanging it.
        self.client = client or redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30
        )
        self.store = JobStore(self.client, settings.result_ttl)
        if loader is None:
            probes = live_probes(settings.device, client=self.client, queues=[settings.queue])
            probes.load = last_known_load(probes.load)
            manager = DynamicQuantizationManager(probes, settings)
            set_quantization_manager(manager)  # get_quantization_manager() in this process is the worker's
            from worker.model_loader import ModelLoader

            loader = ModelLoader(manager, settings=settings)
        self.loader = loader
        self.manager = loader.manager
        self.retry_budget = AdaptiveBudget.from_settings(self.client, settings) if settings.quality_adaptive else None
        self.loader.stage_listener = self.record_stage
        self.profiles = ProfileStore(
            self.client, recovery.host_of(name), self.manager.device, settings.profile_ttl_days
        )
        self.manager.profile_source = self.profiles.level_stats
        self.loader.load_listener = self.profiles.record_load
        self.idle = IdleWork(
            self.loader, self.profiles, self.client, settings, lambda: self.active_job is not None, self._queued
        )
        self.loader.variant_wanted = self.idle.want_variant
        self.sweeper = recovery.Sweeper(self.client, settings, me=name)
        self.started_at = time.time()
        self.active_job: str | None = None
        self.last_job: JobSummary | None = None
        self.jobs_done = 0
        self._lock = threading.Lock()
        self.heartbeat = status.Heartbeat(
            self.client,
            name,
            self.snapshot,
            self.clear_cache,
            settings.heartbeat_seconds,
            settings.heartbeat_ttl,
            self.on_beat,
        )

    def start(self) -> None:
        """Assemble the default model if it is bundled and load the checker's word tables, so no job waits for them;
        then begin publishing this worker's state (it is ready) and start idle work."""
        from worker.quality import warm

        try:
            self.loader.registry.get(self.settings.default_model)
        except DynaquantError as exc:
            log.warning("the default model is not ready (%s); the first job that needs it will say why", exc)
        warm()
        self.heartbeat.start()
        self.idle.want_calibration(self.settings.default_model)
        self.idle.start()

    def stop(self) -> None:
        """Stop publishing and remove this worker from the status; stop idle work."""
        self.idle.stop()
        self.heartbeat.stop()

    def _queued(self) -> int:
        return self.manager.probes.load().queued

    def begin_job(self, job_id: str) -> None:
        """Note the job this worker now runs (idle work stops at its next token)."""
        with self._lock:
            self.active_job = job_id

    def job_stored(self, spec: JobSpec, result: JobResult) -> None:
        """After a job's result is stored: add it to its level's profile, and offer it to idle work. Never raises."""
        try:
            self.profiles.record_job(result)
            self.idle.finished(spec, result)
        except Exception:
            log.exception("could not record job figures in the profiles; the job is stored")

    def end_job(self, summary: JobSummary) -> None:
        """Note the job this worker just finished."""
        with self._lock:
            self.active_job = None
            self.last_job = summary
            self.jobs_done += 1
        self.idle.note_job_end()

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
            self.store.renew_lease(active, self.name, self.settings.heartbeat_ttl)

    def record_stage(self, phase: Phase, model: str, level: str) -> None:
        """Note in the running job's record what this worker loads or runs, before it does (a death is traced to it)."""
        with self._lock:
            active = self.active_job
        if active is None or self.idle.on_this_thread():  # idle work's loads are not the job's stage
            return
        try:
            self.store.set_stage(active, phase, model, level)
        except redis.RedisError as exc:
            log.warning("could not note the stage of job %s: %s", active, exc)

    def ceiling_for(self, job_id: str, model: str) -> AppliedCeiling | None:
        """The level a job may run at most, and why: its own (after its worker died) and this host's for the model."""
        reasons: list[str] = []
        own = self.store.ceiling(job_id)
        if own:
            reasons.append(f"at most {own}: an earlier attempt's worker died on a higher level")
        shared = recovery.host_ceiling(self.client, recovery.host_of(self.name), model)
        if shared:
            until = time.strftime("%H:%M:%S", time.localtime(shared.until))
            reasons.append(f"at most {shared.level} on this host until {until}: {shared.reason}")
        level = recovery.most_restrictive(own, shared.level if shared else None)
        return AppliedCeiling(level=level, reasons=reasons) if level else None

    def clear_cache(self) -> ClearReport:
        """Free every cached model no job is using, and keep idle work from loading one again until a job ran or
        the quiet period passed; say what was freed."""
        self.idle.hold()
        return ClearReport(freed_mb=self.loader.clear_cache(), at=time.time())

    def next_level(self, used_fraction: float, load: int) -> dict[str, Any]:
        """The level the default model's next job would run at and why (the matrix's alone if it cannot be known)."""
        model = self.settings.default_model
        try:
            shared = recovery.host_ceiling(self.client, recovery.host_of(self.name), model)
            decision = self.loader.next_level(model, Request(ceiling=shared.level if shared else None))
            return {"recommended_level": decision.level, "recommended_reasons": list(decision.reasons)}
        except (DynaquantError, redis.RedisError, OSError) as exc:
            level = self.manager.select_level(used_fraction, load)
            return {"recommended_level": level, "recommended_reasons": [f"the matrix alone: {exc}"]}

    def snapshot(self, cache_clear_seen: int = 0) -> WorkerState:
        """This worker's state as its heartbeat publishes it."""
        reading = self.manager.probes.memory()
        load = self.manager.probes.load()
        with self._lock:
            active, last, done = self.active_job, self.last_job, self.jobs_done
        return WorkerState.model_validate(
            {
                "worker": self.name,
                "heartbeat_at": time.time(),
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started_at": self.started_at,
                "device": self.manager.device,
                "memory": reading,
                "capabilities": self.manager.capabilities,
                "thresholds": self.manager.thresholds,
                **self.next_level(reading.used_fraction, load.total),
                "active_job": active,
                "queue": load,
                "current_levels": dict(self.manager.stabilizer.current),
                "choices": self.manager.level_choices(),
                "cache": self.loader.cache.stats(),
                "models_available": self.loader.registry.names(),
                "last_job": last,
                "jobs_done": done,
                "reoptimizations": self.loader.reoptimizations,
                "cache_clear_seen": cache_clear_seen,
                "threads": self.settings.thread_count,
                "ceilings": recovery.host_ceilings(
                    self.client, recovery.host_of(self.name), self.loader.registry.names()
                ),
            }
        )


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
