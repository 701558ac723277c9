"""Pure views over the live workers' published states: one status, memory and cache for the whole service.

Workers may be older or newer than this code, so every key is read defensively: a missing or
malformed value becomes null, never an invented number.
"""

from __future__ import annotations

import math
from typing import Any

from worker.policy import LEVELS, Thresholds, memory_band

NO_WORKERS_MESSAGE = (
    "no worker is alive (none has sent a heartbeat lately): start one with `dynaquant up` or "
    "`celery -A worker.tasks worker --pool solo --loglevel info`, using the same REDIS_URL as this API"
)


def number(value: Any) -> float | None:
    """A finite number, or None for anything else (bools included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def name_of(state: dict[str, Any]) -> str:
    """A worker's name as it published it."""
    return str(state.get("worker") or "unknown")


def used_fraction(state: dict[str, Any]) -> float | None:
    """Share of the worker's memory pool in use, 0 to 1, if it says."""
    memory = _dict(state.get("memory"))
    fraction = number(memory.get("used_fraction"))
    if fraction is None:
        used, total = number(memory.get("used_gb")), number(memory.get("total_gb"))
        fraction = used / total if used is not None and total else None
    return min(max(fraction, 0.0), 1.0) if fraction is not None else None


def most_pressured(workers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The worker whose memory is fullest (a worker with no reading counts as least full)."""
    if not workers:
        return None
    return max(workers, key=lambda w: _or(used_fraction(w), -1.0))


def _or(value: float | None, fallback: float) -> float:
    return fallback if value is None else value


def percent(fraction: float | None) -> str | None:
    """A fraction as the spec writes it: '53.1%'."""
    return f"{fraction * 100:.1f}%" if fraction is not None else None


def band(state: dict[str, Any], thresholds: Thresholds) -> str | None:
    """The worker's memory band (comfortable .. emergency), as it said or from its reading."""
    said = state.get("memory_status")
    if isinstance(said, str):
        return said
    fraction = used_fraction(state)
    return memory_band(fraction, thresholds) if fraction is not None else None


def worker_memory(state: dict[str, Any], thresholds: Thresholds) -> dict[str, Any]:
    """One worker's memory in the spec's /memory shape, with its name, host and pool."""
    memory = _dict(state.get("memory"))
    return {
        "worker": name_of(state),
        "host": state.get("host"),
        "device": state.get("device"),
        "pool": memory.get("pool"),
        "total_gb": number(memory.get("total_gb")),
        "available_gb": number(memory.get("available_gb")),
        "used_gb": number(memory.get("used_gb")),
        "percent_used": percent(used_fraction(state)),
        "process_memory_gb": number(memory.get("process_gb")),
        "status": band(state, thresholds),
    }


def memory_view(workers: list[dict[str, Any]], thresholds: Thresholds) -> dict[str, Any]:
    """The spec's /memory body for the service: pools counted once (workers on one host share RAM)."""
    per_worker = [worker_memory(w, thresholds) for w in workers]
    if not workers:
        return {
            "total_gb": None,
            "available_gb": None,
            "used_gb": None,
            "percent_used": None,
            "process_memory_gb": None,
            "status": "no_workers",
            "message": NO_WORKERS_MESSAGE,
            "most_pressured_worker": None,
            "workers": [],
        }
    pools: dict[tuple[Any, Any], dict[str, Any]] = {}
    for entry in per_worker:
        if entry["total_gb"] is not None:
            pools.setdefault((entry["host"], entry["pool"]), entry)
    total = sum(p["total_gb"] for p in pools.values()) if pools else None
    available = _sum(p["available_gb"] for p in pools.values()) if pools else None
    used = _sum(p["used_gb"] for p in pools.values()) if pools else None
    fraction = min(max(used / total, 0.0), 1.0) if used is not None and total else None
    worst = most_pressured(workers)
    return {
        "total_gb": _round(total),
        "available_gb": _round(available),
        "used_gb": _round(used),
        "percent_used": percent(fraction),
        "process_memory_gb": _round(_sum(e["process_memory_gb"] for e in per_worker)),
        "status": memory_band(fraction, thresholds) if fraction is not None else None,
        "message": None,
        "most_pressured_worker": name_of(worst) if worst else None,
        "workers": per_worker,
    }


def _sum(values: Any) -> float | None:
    found = [v for v in values if v is not None]
    return sum(found) if found else None


def _round(value: float | None, digits: int = 3) -> float | None:
    return round(value, digits) if value is not None else None


def worker_cache(state: dict[str, Any]) -> dict[str, Any]:
    """One worker's cache in the spec's /cache shape, with its name."""
    cache = _dict(state.get("cache"))
    current, most = number(cache.get("current_size_mb")), number(cache.get("max_size_mb"))
    models = [{**m, "worker": name_of(state)} for m in _list(cache.get("models")) if isinstance(m, dict)]
    count = number(cache.get("models_cached"))
    return {
        "worker": name_of(state),
        "current_size_mb": current,
        "max_size_mb": most,
        "utilization": percent(current / most) if current is not None and most else None,
        "models_cached": int(count) if count is not None else len(models),
        "models": models,
    }


def cache_view(workers: list[dict[str, Any]]) -> dict[str, Any]:
    """The spec's /cache body summed over every live worker, with each worker's own."""
    per_worker = [worker_cache(w) for w in workers]
    if not workers:
        return {
            "current_size_mb": None,
            "max_size_mb": None,
            "utilization": None,
            "models_cached": 0,
            "models": [],
            "status": "no_workers",
            "message": NO_WORKERS_MESSAGE,
            "workers": [],
        }
    current = _sum(e["current_size_mb"] for e in per_worker)
    most = _sum(e["max_size_mb"] for e in per_worker)
    return {
        "current_size_mb": _round(current, 1),
        "max_size_mb": _round(most, 1),
        "utilization": percent(current / most) if current is not None and most else None,
        "models_cached": sum(e["models_cached"] for e in per_worker),
        "models": [m for e in per_worker for m in e["models"]],
        "status": "ok",
        "message": None,
        "workers": per_worker,
    }


def capabilities(workers: list[dict[str, Any]]) -> dict[str, bool]:
    """A level is available when some live worker can run it."""
    levels = list(LEVELS) + sorted({k for w in workers for k in _dict(w.get("capabilities"))} - set(LEVELS))
    return {level: any(_dict(w.get("capabilities")).get(level) is True for w in workers) for level in levels}


def current_models(workers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every model some worker holds, each tagged with its worker."""
    return [{**m, "worker": name_of(w)} for w in workers for m in _list(w.get("current_models")) if isinstance(m, dict)]


def status_view(workers: list[dict[str, Any]], queue: dict[str, Any], thresholds: Thresholds) -> dict[str, Any]:
    """The spec's /status body for the whole service, plus every worker's full state and the queue."""
    if not workers:
        return {
            "status": "no_workers",
            "message": NO_WORKERS_MESSAGE,
            "device": None,
            "devices": [],
            "active_requests": None,
            "memory": None,
            "memory_status": None,
            "capabilities": None,
            "recommended_level": None,
            "current_models": [],
            "workers": [],
            "queue": queue,
        }
    worst = most_pressured(workers) or workers[0]
    devices = sorted({str(w["device"]) for w in workers if isinstance(w.get("device"), str)})
    active = [number(w.get("active_requests")) for w in workers]
    memory = _dict(worst.get("memory"))
    level = worst.get("recommended_level")
    return {
        "status": "ok",
        "message": None,
        "device": devices[0] if len(devices) == 1 else ("mixed" if devices else None),
        "devices": devices,
        "active_requests": int(_sum(active) or 0) if any(a is not None for a in active) else None,
        "memory": {
            "worker": name_of(worst),
            "total_gb": number(memory.get("total_gb")),
            "available_gb": number(memory.get("available_gb")),
            "used_gb": number(memory.get("used_gb")),
            "used_percent": percent(used_fraction(worst)),
            "process_gb": number(memory.get("process_gb")),
        },
        "memory_status": band(worst, thresholds),
        "capabilities": capabilities(workers),
        "recommended_level": level if isinstance(level, str) else None,
        "current_models": current_models(workers),
        "workers": workers,
        "queue": queue,
    }
