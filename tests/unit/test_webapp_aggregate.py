"""Pure views over worker states: defensive reading, most-pressured choice, sums and bands."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from webapp import aggregate
from worker.policy import Thresholds

T = Thresholds()


def worker(name: str, used: float | None = 0.5, total: float = 16.0, **extra: Any) -> dict[str, Any]:
    memory = {"pool": "system", "total_gb": total, "process_gb": 1.0}
    if used is not None:
        memory.update(used_gb=used * total, available_gb=(1 - used) * total, used_fraction=used)
    return {"worker": name, "host": f"{name}-host", "device": "cpu", "memory": memory, **extra}


def test_number_accepts_only_finite_numbers() -> None:
    assert aggregate.number(3) == 3.0 and aggregate.number(2.5) == 2.5
    for bad in (True, None, "3", float("nan"), float("inf"), [1]):
        assert aggregate.number(bad) is None


def test_used_fraction_from_the_fraction_or_the_gigabytes() -> None:
    assert aggregate.used_fraction(worker("a", 0.25)) == 0.25
    assert aggregate.used_fraction({"memory": {"used_gb": 4, "total_gb": 16}}) == 0.25
    assert aggregate.used_fraction({"memory": {"used_fraction": 1.7}}) == 1.0
    assert aggregate.used_fraction({"memory": "broken"}) is None
    assert aggregate.used_fraction({}) is None


def test_most_pressured_prefers_a_reading_over_none() -> None:
    workers = [worker("a", None), worker("b", 0.3), worker("c", 0.9)]
    assert aggregate.most_pressured(workers) == workers[2]
    assert aggregate.most_pressured([worker("a", None), worker("b", 0.1)])["worker"] == "b"  # type: ignore[index]
    assert aggregate.most_pressured([]) is None


def test_band_uses_the_workers_word_or_its_reading() -> None:
    assert aggregate.band({"memory_status": "tight"}, T) == "tight"
    assert aggregate.band(worker("a", 0.86), T) == "emergency"
    assert aggregate.band(worker("a", 0.1), T) == "comfortable"
    assert aggregate.band({}, T) is None


def test_status_view_without_workers_invents_nothing() -> None:
    view = aggregate.status_view([], {"depth": 3}, T)
    assert view["status"] == "no_workers" and "dynaquant up" in view["message"]
    assert view["memory"] is None and view["active_requests"] is None and view["queue"] == {"depth": 3}


def test_status_view_mixed_devices_and_missing_counts() -> None:
    a = worker("a", 0.2, active_requests=2, capabilities={"fp16": True, "int8": "yes"})
    b = {**worker("b", 0.7), "device": "cuda", "capabilities": "broken"}
    view = aggregate.status_view([a, b], {}, T)
    assert view["device"] == "mixed" and view["devices"] == ["cpu", "cuda"]
    assert view["active_requests"] == 2
    assert view["memory"]["worker"] == "b" and view["memory"]["used_percent"] == "70.0%"
    assert view["memory_status"] == "tight"
    assert view["capabilities"] == {"fp16": True, "int8": False, "int4": False, "int2": False}
    assert aggregate.status_view([worker("a")], {}, T)["active_requests"] is None


def test_status_view_does_not_change_the_states() -> None:
    states = [worker("a", current_models=[{"name": "m"}])]
    before = copy.deepcopy(states)
    aggregate.status_view(states, {}, T)
    assert states == before


def test_memory_view_counts_a_shared_pool_once() -> None:
    a, b = worker("a", 0.5), worker("b", 0.5)
    b["host"] = a["host"]
    view = aggregate.memory_view([a, b], T)
    assert view["total_gb"] == 16.0 and view["used_gb"] == 8.0 and view["percent_used"] == "50.0%"
    assert view["process_memory_gb"] == 2.0 and view["status"] == "moderate"
    assert len(view["workers"]) == 2


def test_memory_view_with_unreadable_memory() -> None:
    view = aggregate.memory_view([{"worker": "old"}], T)
    assert view["total_gb"] is None and view["status"] is None and view["workers"][0]["worker"] == "old"


@pytest.mark.parametrize(
    ("cache", "expected"),
    [
        ({"current_size_mb": 500, "max_size_mb": 1000, "models": [{"name": "m"}]}, ("50.0%", 1)),
        ({"current_size_mb": 500, "max_size_mb": 0}, (None, 0)),
        (None, (None, 0)),
        ({"models": ["not a dict", {"name": "m"}], "models_cached": 4}, (None, 4)),
    ],
)
def test_worker_cache(cache: Any, expected: tuple[str | None, int]) -> None:
    view = aggregate.worker_cache({"worker": "w", "cache": cache})
    assert (view["utilization"], view["models_cached"]) == expected
    assert all(m["worker"] == "w" for m in view["models"])
