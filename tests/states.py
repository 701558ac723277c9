"""Typed worker heartbeats and job results for tests, built from the contract (worker.contracts)."""

from __future__ import annotations

import time
from typing import Any

from worker.contracts import GIB, CachedModel, CacheStats, JobResult, LoadReading, MemoryReading, WorkerState
from worker.policy import Thresholds


def memory_gib(total: float, used: float, process: float = 1.2, pool: str = "system") -> MemoryReading:
    """A memory reading given in GiB."""
    return MemoryReading(
        pool=pool,
        total_bytes=int(total * GIB),
        available_bytes=int((total - used) * GIB),
        process_bytes=int(process * GIB),
    )


def cached(name: str, level: str, size_mb: float, access_count: int = 1) -> CachedModel:
    """A model a worker's cache holds, idle."""
    return CachedModel.model_validate(
        {"name": name, "level": level, "size_mb": size_mb, "access_count": access_count, "in_use": False,
         "last_used": time.time()}
    )  # fmt: skip


def worker_state(name: str = "worker-a", **changes: Any) -> WorkerState:
    """A typical worker's heartbeat (7.5 of 16 GiB used: moderate), with any field changed."""
    base: dict[str, Any] = {
        "worker": name,
        "heartbeat_at": time.time(),
        "pid": 4242,
        "host": "test-host",
        "started_at": time.time() - 60,
        "device": "cpu",
        "memory": memory_gib(16.0, 7.5),
        "capabilities": {"fp16": True, "int8": True, "int4": True, "int2": True},
        "thresholds": Thresholds(),
        "recommended_level": "int8",
        "active_job": "job-in-progress",
        "queue": LoadReading(queued=0, running=1),
        "current_levels": {"gemma-3-270m": "int4"},
        "cache": CacheStats(
            current_size_mb=253.0, max_size_mb=8000.0, models=[cached("gemma-3-270m", "int4", 253.0, 45)]
        ),
        "models_available": ["gemma-3-270m", "tiny-test-model"],
        "jobs_done": 7,
        "reoptimizations": 2,
    }
    return WorkerState.model_validate({**base, **changes})


def job_result(**changes: Any) -> JobResult:
    """A succeeded job's result, with any field changed."""
    base: dict[str, Any] = {
        "text": "Plants make food from light.", "level": "int4", "model": "gemma-3-270m", "backend": "gguf",
        "tokens_in": 230, "tokens_out": 9, "generation_seconds": 0.4, "load_seconds": 0.0, "tokens_per_second": 22.5,
        "finish_reason": "stop", "readability_grade": 2.3, "grade_level": 5, "subject": "Science",
        "memory_used": 0.4, "load": 0, "cache_hit": True,
    }  # fmt: skip
    return JobResult.model_validate({**base, **changes})
