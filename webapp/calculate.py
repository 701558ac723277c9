"""The /calculate answer: the level the policy picks for a model size under the live memory and load.

The fullest live worker's memory and thresholds are authoritative (they are what its own decisions
use). With no worker alive, the API host's RAM and this process's thresholds stand in, and the basis
says so.
"""

from __future__ import annotations

from collections.abc import Sequence

import psutil

from webapp.aggregate import most_pressured
from worker.contracts import CalculateRequest, Calculation, CalculationBasis, MemoryReading, WorkerState
from worker.policy import (
    LEVELS,
    Request,
    Thresholds,
    as_level,
    compression_ratio,
    decide_projected,
    estimate_memory_gb,
    estimate_weights_gb,
    loader_config,
    memory_band,
)

GB = 1e9  # model sizes are counted in GB, memory readings in bytes


def calculation(ask: CalculateRequest, workers: list[WorkerState], load: int, own: Thresholds) -> Calculation:
    """The level a model of `ask.model_size_params` billion weights would get now, and what that rests on."""
    worst = most_pressured(workers)
    if worst is not None:
        memory, thresholds = worst.memory, worst.thresholds
        supported = [level for level in LEVELS if worst.capabilities.get(level)] or list(LEVELS)
        note = f"memory and thresholds of worker {worst.worker}, the fullest live worker"
    else:
        vm = psutil.virtual_memory()
        memory = MemoryReading(pool="system", total_bytes=vm.total, available_bytes=vm.available, process_bytes=0)
        thresholds, supported = own, list(LEVELS)
        note = "no live worker reported memory: this reading is the API host's RAM, under the API's thresholds"
    return calculate(ask, memory, load, thresholds, supported, worst.worker if worst else None, note)


def calculate(
    ask: CalculateRequest,
    memory: MemoryReading,
    load: int,
    thresholds: Thresholds,
    supported: Sequence[str],
    worker: str | None,
    note: str,
) -> Calculation:
    """The answer for one memory reading: the level, its compression and size, and the load settings."""
    size = ask.model_size_params
    sizes: dict[str, int] = {level: int(estimate_memory_gb(size, level) * GB) for level in LEVELS}
    level = as_level(
        decide_projected(
            memory.used_bytes, memory.total_bytes, 0, sizes, load, thresholds, Request(ask.task_priority), supported
        )
    )
    basis = CalculationBasis(
        source="worker" if worker else "api_host",
        worker=worker,
        note=note,
        memory_used=round(memory.used_fraction, 4),
        memory_status=memory_band(memory.used_fraction, thresholds),
        load=load,
        backend=ask.backend,
        task_priority=ask.task_priority,
        thresholds=thresholds,
    )
    return Calculation(
        level=level,
        precision=level,
        compression_ratio=f"{compression_ratio(level):.1f}x",
        estimated_memory_gb=round(estimate_memory_gb(size, level), 2),
        estimated_weights_gb=round(estimate_weights_gb(size, level), 2),
        config=loader_config(level, ask.backend),
        basis=basis,
    )
