"""Views over typed worker heartbeats: most-pressured choice, sums, bands under the workers' own thresholds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.states import cached, memory_gib, worker_state
from webapp import aggregate
from worker.contracts import CacheStats, LoadReading, MemoryReading, QueueSummary, WorkerState
from worker.policy import Thresholds

QUEUE = QueueSummary(name="simplify", depth=3, by_priority={"5": 3}, running=0)


def worker(name: str, used: float = 0.5, total: float = 16.0, **extra: object) -> WorkerState:
    return worker_state(name, host=f"{name}-host", memory=memory_gib(total, used * total, process=1.0), **extra)


def test_memory_reading_is_bytes_with_derived_gib_and_fraction() -> None:
    reading = memory_gib(16.0, 4.0)
    assert reading.used_bytes == 4 * 1024**3 and reading.used_fraction == 0.25
    assert aggregate.figures(reading) == {"total_gb": 16.0, "available_gb": 12.0, "used_gb": 4.0}
    full = MemoryReading(pool="x", total_bytes=10, available_bytes=0, process_bytes=0)
    assert (
        full.used_fraction == 1.0
        and MemoryReading(pool="x", total_bytes=0, available_bytes=0, process_bytes=0).used_fraction == 1.0
    )


def test_a_heartbeat_of_another_version_or_shape_does_not_parse() -> None:
    good = worker("a").model_dump(mode="json")
    assert WorkerState.model_validate(good).memory.total_bytes == 16 * 1024**3
    for bad in ({**good, "version": 1}, {**good, "memory": "not a dict"}, {"device": "cuda"}):
        with pytest.raises(ValidationError):
            WorkerState.model_validate(bad)


def test_most_pressured_is_the_fullest() -> None:
    workers = [worker("a", 0.2), worker("b", 0.3), worker("c", 0.9)]
    assert aggregate.most_pressured(workers) == workers[2]
    assert aggregate.most_pressured([]) is None


def test_band_is_judged_by_the_workers_own_thresholds() -> None:
    assert worker("a", 0.86).memory_status == "emergency"
    assert worker("a", 0.1).memory_status == "comfortable"
    strict = Thresholds(memory_comfortable=0.05, memory_moderate=0.06, memory_tight=0.07, memory_critical=0.08)
    assert worker("a", 0.1, thresholds=strict).memory_status == "emergency"


def test_status_view_without_workers_invents_nothing() -> None:
    view = aggregate.status_view([], QUEUE)
    assert view.status == "no_workers" and view.message and "dynaquant up" in view.message
    assert view.memory is None and view.active_requests is None and view.queue == QUEUE


def test_status_view_mixed_devices_and_counts() -> None:
    a = worker("a", 0.2, capabilities={"fp16": True, "int8": False})
    b = worker("b", 0.7, device="cuda", active_job=None, capabilities={"int8": True, "int3": True})
    view = aggregate.status_view([a, b], QUEUE)
    assert view.device == "mixed" and view.devices == ["cpu", "cuda"]
    assert view.active_requests == 1
    assert view.memory is not None and view.memory.worker == "b" and view.memory.used_percent == "70.0%"
    assert view.memory_status == "tight"
    assert view.capabilities == {"fp16": True, "int8": True, "int4": False, "int2": False, "int3": True}
    assert {(m.worker, m.name) for m in view.current_models} == {("a", "gemma-3-270m"), ("b", "gemma-3-270m")}


def test_memory_view_counts_a_shared_pool_once() -> None:
    a, b = worker("a", 0.5), worker("b", 0.5)
    b = b.model_copy(update={"host": a.host})
    view = aggregate.memory_view([a, b])
    assert view.total_gb == 16.0 and view.used_gb == 8.0 and view.percent_used == "50.0%"
    assert view.process_memory_gb == 2.0 and view.status == "moderate"
    assert len(view.workers) == 2


def test_pooled_band_uses_the_fullest_workers_thresholds() -> None:
    strict = Thresholds(memory_comfortable=0.05, memory_moderate=0.06, memory_tight=0.07, memory_critical=0.3)
    view = aggregate.memory_view([worker("a", 0.1), worker("b", 0.2, thresholds=strict)])
    assert view.most_pressured_worker == "b" and view.percent_used == "15.0%" and view.status == "critical"


def test_worker_cache_utilization() -> None:
    state = worker("w", cache=CacheStats(current_size_mb=500, max_size_mb=1000, models=[cached("m", "int4", 500)]))
    view = aggregate.worker_cache(state)
    assert (view.utilization, view.models_cached) == ("50.0%", 1) and all(m.worker == "w" for m in view.models)
    empty = aggregate.cache_view([])
    assert empty.status == "no_workers" and empty.current_size_mb is None and empty.utilization is None


def test_load_reading_total() -> None:
    assert LoadReading(queued=3, running=1).total == 4
