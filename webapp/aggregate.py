"""Views over the live workers' heartbeats: one status, memory and cache for the whole service.

Each worker's band is judged by the thresholds it publishes (they are what its decisions use); the
pooled band of several workers uses the thresholds of the fullest one.
"""

from __future__ import annotations

from worker.contracts import (
    CacheView,
    MemoryReading,
    MemoryView,
    QueueSummary,
    ServiceSummary,
    StatusMemory,
    StatusView,
    WorkerCache,
    WorkerMemory,
    WorkerState,
    gib,
    utilization,
)
from worker.policy import LEVELS, memory_band

NO_WORKERS_MESSAGE = (
    "no worker is alive (none has sent a heartbeat lately): start one with `dynaquant up` or "
    "`celery -A worker.tasks worker --pool solo --loglevel info`, using the same REDIS_URL as this API"
)


def percent(fraction: float) -> str:
    """A fraction as a percentage: '53.1%'."""
    return f"{fraction * 100:.1f}%"


def figures(memory: MemoryReading) -> dict[str, float]:
    """A reading's size, free and used memory, in GiB."""
    return {
        "total_gb": gib(memory.total_bytes),
        "available_gb": gib(memory.available_bytes),
        "used_gb": gib(memory.used_bytes),
    }


def most_pressured(workers: list[WorkerState]) -> WorkerState | None:
    """The worker whose memory is fullest."""
    return max(workers, key=lambda w: w.memory.used_fraction, default=None)


def worker_memory(state: WorkerState) -> WorkerMemory:
    """One worker's memory pool and band, with its name and host."""
    memory = state.memory
    named = {"worker": state.worker, "host": state.host, "device": state.device, "pool": memory.pool}
    band = {"percent_used": percent(memory.used_fraction), "status": state.memory_status}
    return WorkerMemory.model_validate(
        {**named, **figures(memory), **band, "process_memory_gb": gib(memory.process_bytes)}
    )


def memory_view(workers: list[WorkerState]) -> MemoryView:
    """The service's memory: each pool counted once (workers on one host share its RAM), in GiB."""
    worst = most_pressured(workers)
    if worst is None:
        return MemoryView(
            total_gb=None,
            available_gb=None,
            used_gb=None,
            percent_used=None,
            process_memory_gb=None,
            status="no_workers",
            message=NO_WORKERS_MESSAGE,
            most_pressured_worker=None,
            workers=[],
        )
    pools = {(w.host, w.memory.pool): w.memory for w in reversed(workers)}.values()
    total = sum(p.total_bytes for p in pools)
    used = sum(p.used_bytes for p in pools)
    fraction = min(used / total, 1.0) if total else 1.0
    return MemoryView(
        total_gb=gib(total),
        available_gb=gib(sum(p.available_bytes for p in pools)),
        used_gb=gib(used),
        percent_used=percent(fraction),
        process_memory_gb=gib(sum(w.memory.process_bytes for w in workers)),
        status=memory_band(fraction, worst.thresholds),
        message=None,
        most_pressured_worker=worst.worker,
        workers=[worker_memory(w) for w in workers],
    )


def worker_cache(state: WorkerState) -> WorkerCache:
    """One worker's cache, with its name."""
    cache = state.cache
    return WorkerCache(
        worker=state.worker,
        current_size_mb=cache.current_size_mb,
        max_size_mb=cache.max_size_mb,
        utilization=cache.utilization,
        models_cached=cache.models_cached,
        models=state.current_models,
    )


def cache_view(workers: list[WorkerState]) -> CacheView:
    """Every live worker's cache summed (MiB), with each worker's own."""
    per_worker = [worker_cache(w) for w in workers]
    current = round(sum(c.current_size_mb for c in per_worker), 1) if workers else None
    most = round(sum(c.max_size_mb for c in per_worker), 1) if workers else None
    return CacheView(
        current_size_mb=current,
        max_size_mb=most,
        utilization=utilization(current, most),
        models_cached=sum(c.models_cached for c in per_worker),
        models=[m for c in per_worker for m in c.models],
        status="ok" if workers else "no_workers",
        message=None if workers else NO_WORKERS_MESSAGE,
        workers=per_worker,
    )


def capabilities(workers: list[WorkerState]) -> dict[str, bool]:
    """A level is available when some live worker can run it."""
    levels = list(LEVELS) + sorted({k for w in workers for k in w.capabilities} - set(LEVELS))
    return {level: any(w.capabilities.get(level, False) for w in workers) for level in levels}


def status_view(workers: list[WorkerState], queue: QueueSummary, service: ServiceSummary | None = None) -> StatusView:
    """The whole service (device, the fullest worker's memory and level), every worker's state, the queue, and what
    `dynaquant up` says of its processes."""
    service = service or ServiceSummary.of([])
    worst = most_pressured(workers)
    if worst is None:
        return StatusView(
            status="no_workers",
            message=NO_WORKERS_MESSAGE,
            device=None,
            devices=[],
            active_requests=None,
            memory=None,
            memory_status=None,
            capabilities=None,
            recommended_level=None,
            current_models=[],
            workers=[],
            queue=queue,
            service=service,
        )
    devices = sorted({w.device for w in workers})
    memory = worst.memory
    return StatusView(
        status="ok",
        message=None,
        device=devices[0] if len(devices) == 1 else "mixed",
        devices=devices,
        active_requests=sum(w.active_requests for w in workers),
        memory=StatusMemory(
            worker=worst.worker,
            **figures(memory),
            used_percent=percent(memory.used_fraction),
            process_gb=gib(memory.process_bytes),
        ),
        memory_status=worst.memory_status,
        capabilities=capabilities(workers),
        recommended_level=worst.recommended_level,
        current_models=[m for w in workers for m in w.current_models],
        workers=workers,
        queue=queue,
        service=service,
    )
