"""The /calculate answer: the level the policy picks for a model size under the live memory and load."""

from __future__ import annotations

import math
from typing import Any

import psutil

from webapp.aggregate import most_pressured, name_of, number
from webapp.body import reject_unknown
from webapp.errors import ApiError
from worker.policy import (
    LEVELS,
    TASK_PRIORITIES,
    Request,
    Thresholds,
    compression_ratio,
    decide_projected,
    estimate_memory_gb,
    estimate_weights_gb,
    loader_config,
    memory_band,
)

GB = 1e9  # model sizes, as worker.quantization counts them
GIB = 1024**3  # memory readings, as worker.probes reports them
BACKENDS: tuple[str, ...] = ("transformers", "gguf")
MAX_PARAMS_BILLIONS = 100_000.0
FIELDS: tuple[str, ...] = ("model_size_params", "task_priority", "backend")


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_input", f"{field}: {message}", field)


def parse_request(payload: dict[str, Any]) -> tuple[float, str, str]:
    """model_size_params (billions, > 0), task_priority and backend from a /calculate body, or a 400."""
    reject_unknown(payload, FIELDS)
    size = payload.get("model_size_params")
    if isinstance(size, bool) or not isinstance(size, (int, float)) or not math.isfinite(size):
        raise _invalid("model_size_params", f"is required: the model's size in billions of weights, got {size!r}")
    if not 0 < size <= MAX_PARAMS_BILLIONS:
        raise _invalid("model_size_params", f"must be above 0 and at most {MAX_PARAMS_BILLIONS:g}, got {size!r}")
    priority = payload.get("task_priority", "balanced")
    if priority not in TASK_PRIORITIES:
        raise _invalid("task_priority", f"must be one of {', '.join(TASK_PRIORITIES)}, got {priority!r}")
    backend = payload.get("backend", "transformers")
    if backend not in BACKENDS:
        raise _invalid("backend", f"must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return float(size), str(priority), str(backend)


def reading(workers: list[dict[str, Any]]) -> dict[str, Any]:
    """Memory the decision rests on: the fullest live worker's, else this host's RAM (said so)."""
    worst = most_pressured(workers)
    memory = worst.get("memory") if worst else None
    if isinstance(memory, dict):
        used, total = number(memory.get("used_gb")), number(memory.get("total_gb"))
        if used is not None and used >= 0 and total is not None and total > 0:
            caps = worst.get("capabilities") if worst else None
            supported = [lvl for lvl in LEVELS if isinstance(caps, dict) and caps.get(lvl) is True]
            return {
                "source": "worker",
                "worker": name_of(worst) if worst else None,
                "used_bytes": int(used * GIB),
                "total_bytes": int(total * GIB),
                "supported": supported or list(LEVELS),
                "note": f"memory of worker {name_of(worst) if worst else '?'}, the fullest live worker",
            }
    vm = psutil.virtual_memory()
    return {
        "source": "api_host",
        "worker": None,
        "used_bytes": int(vm.total - vm.available),
        "total_bytes": int(vm.total),
        "supported": list(LEVELS),
        "note": "no live worker reported memory: this reading is the API host's RAM, not a worker's",
    }


def calculation(
    size: float, task_priority: str, backend: str, basis: dict[str, Any], load: int, t: Thresholds
) -> dict[str, Any]:
    """The spec's /calculate body (level, precision, compression_ratio, estimated_memory_gb, config) plus its basis."""
    sizes = {level: int(estimate_memory_gb(size, level) * GB) for level in LEVELS}
    level = decide_projected(
        basis["used_bytes"], basis["total_bytes"], 0, sizes, load, t, Request(task_priority), basis["supported"]
    )
    fraction = min(basis["used_bytes"] / basis["total_bytes"], 1.0) if basis["total_bytes"] else 1.0
    return {
        "level": level,
        "precision": level,
        "compression_ratio": f"{compression_ratio(level):.1f}x",
        "estimated_memory_gb": round(estimate_memory_gb(size, level), 2),
        "estimated_weights_gb": round(estimate_weights_gb(size, level), 2),
        "config": loader_config(level, backend),
        "basis": {
            "source": basis["source"],
            "worker": basis["worker"],
            "note": basis["note"],
            "memory_used": round(fraction, 4),
            "memory_status": memory_band(fraction, t),
            "load": load,
            "backend": backend,
            "task_priority": task_priority,
        },
    }
