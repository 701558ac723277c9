"""The quantization endpoints, fed by typed worker heartbeats published to a real Redis."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from tests.states import cached, memory_gib
from worker.contracts import CacheStats, ClearReport
from worker.policy import Thresholds
from worker.status import acknowledge_clear, clear_generation

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.webapp_fixtures import ErrorCheck

pytest_plugins = ["tests.webapp_fixtures"]

FakeWorker = "Callable[..., dict[str, Any]]"


def test_status_with_no_worker_says_so(client: FlaskClient) -> None:
    client.post("/api/v1/jobs", json={"text": "Waiting alone.", "grade_level": 3, "priority": 2})
    body = client.get("/api/v1/quantization/status").get_json()
    assert body["status"] == "no_workers" and body["workers"] == []
    assert "no worker is alive" in body["message"] and "dynaquant up" in body["message"]
    assert "celery -A worker.tasks worker" in body["message"]
    for field in ("device", "active_requests", "memory", "capabilities", "recommended_level"):
        assert body[field] is None, field
    assert body["current_models"] == []
    assert body["queue"]["depth"] == 1 and body["queue"]["by_priority"]["2"] == 1 and body["queue"]["running"] == 0


def test_status_aggregates_live_workers(client: FlaskClient, fake_worker: Any) -> None:
    fake_worker("worker-a")
    fake_worker(
        "worker-b",
        recommended_level="int2",
        memory=memory_gib(32.0, 28.0, process=3.0),
        thresholds=Thresholds(memory_critical=0.9),
        capabilities={"fp16": False, "int8": False, "int4": True, "int2": True, "int3": True},
        cache=CacheStats(current_size_mb=1750, max_size_mb=8000, models=[cached("qwen-7b", "int2", 1750, 3)]),
    )
    body = client.get("/api/v1/quantization/status").get_json()
    assert body["status"] == "ok" and body["message"] is None
    assert body["device"] == "cpu" and body["devices"] == ["cpu"]
    assert body["active_requests"] == 2
    assert body["memory"] == {
        "worker": "worker-b", "total_gb": 32.0, "available_gb": 4.0, "used_gb": 28.0, "used_percent": "87.5%",
        "process_gb": 3.0,
    }  # fmt: skip
    assert body["memory_status"] == "critical", "87.5% is critical under worker-b's own thresholds (0.90)"
    assert body["recommended_level"] == "int2"
    assert body["capabilities"] == {"fp16": True, "int8": True, "int4": True, "int2": True, "int3": True}
    models = {(m["worker"], m["name"], m["level"]) for m in body["current_models"]}
    assert models == {("worker-a", "gemma-3-270m", "int4"), ("worker-b", "qwen-7b", "int2")}
    assert [w["worker"] for w in body["workers"]] == ["worker-a", "worker-b"]
    worker = body["workers"][0]
    assert worker["heartbeat_at"] > 0 and worker["version"] == 2
    assert worker["memory"]["total_bytes"] == 16 * 1024**3 and "total_gb" not in worker["memory"], "bytes, unrounded"


def test_status_says_why_each_worker_holds_its_level(client: FlaskClient, fake_worker: Any) -> None:
    reasons = [
        "matrix: int2 at comfortable memory and load 12",
        "int8 for load: 0.80 s vs 1.00 s per job",
        "int4 for load: 0.60 s vs 0.80 s per job",
        "int2 skipped: not 10% faster than int4 on this host (0.60 s vs 0.60 s per job)",
    ]
    choice = {"model": "gemma-3-270m", "level": "int4", "matrix_level": "int2", "reasons": reasons, "at": time.time()}
    fake_worker("worker-a", choices={"gemma-3-270m": choice})
    fake_worker("worker-b")
    body = client.get("/api/v1/quantization/status").get_json()
    by_name = {w["worker"]: w for w in body["workers"]}
    shown = by_name["worker-a"]["choices"]["gemma-3-270m"]
    assert (shown["level"], shown["matrix_level"], shown["reasons"]) == ("int4", "int2", reasons)
    assert by_name["worker-b"]["choices"] == {}, "a worker that has decided nothing yet says nothing"


def test_a_heartbeat_from_another_release_is_left_out(client: FlaskClient, redis_db: redis.Redis) -> None:
    redis_db.set("dq:worker:old-worker", json.dumps({"device": "cuda", "memory": "not a dict", "cache": None}), ex=10)
    redis_db.sadd("dq:workers", "old-worker")
    for path in ("status", "memory", "cache"):
        response = client.get(f"/api/v1/quantization/{path}")
        assert response.status_code == 200, path
    body = client.get("/api/v1/quantization/status").get_json()
    assert body["status"] == "no_workers" and body["workers"] == []
    assert client.get("/metrics").status_code == 200
    assert (
        client.post("/api/v1/quantization/calculate", json={"model_size_params": 1}).get_json()["basis"]["source"]
        == "api_host"
    )


def test_memory_per_worker_and_aggregate(client: FlaskClient, fake_worker: Any) -> None:
    fake_worker("worker-a")
    fake_worker("worker-b", host="test-host")  # same host and pool: RAM counted once
    fake_worker("worker-c", host="gpu-box", memory=memory_gib(80.0, 60.0, process=55.0, pool="cuda:0"))
    body = client.get("/api/v1/quantization/memory").get_json()
    assert body["total_gb"] == 96.0 and body["used_gb"] == 67.5 and body["available_gb"] == 28.5
    assert body["percent_used"] == "70.3%" and body["status"] == "tight"
    assert body["process_memory_gb"] == pytest.approx(57.4)
    assert body["most_pressured_worker"] == "worker-c"
    one = body["workers"][0]
    assert one == {
        "worker": "worker-a", "host": "test-host", "device": "cpu", "pool": "system", "total_gb": 16.0,
        "available_gb": 8.5, "used_gb": 7.5, "percent_used": "46.9%", "process_memory_gb": 1.2, "status": "moderate",
    }  # fmt: skip
    assert body["workers"][2]["status"] == "critical", "each band from the worker's reading and its thresholds"


def test_memory_and_cache_with_no_worker(client: FlaskClient) -> None:
    memory = client.get("/api/v1/quantization/memory").get_json()
    assert memory["status"] == "no_workers" and memory["total_gb"] is None and memory["workers"] == []
    cache = client.get("/api/v1/quantization/cache").get_json()
    assert cache["status"] == "no_workers" and cache["current_size_mb"] is None and cache["models"] == []


def test_cache_sums_every_worker(client: FlaskClient, fake_worker: Any) -> None:
    fake_worker("worker-a")
    models = [cached("qwen-7b", "int2", 1205.0), cached("gemma-3-270m", "fp16", 542.0)]
    fake_worker("worker-b", cache=CacheStats(current_size_mb=1747.0, max_size_mb=2000.0, models=models))
    body = client.get("/api/v1/quantization/cache").get_json()
    assert body["current_size_mb"] == 2000.0 and body["max_size_mb"] == 10000.0
    assert body["utilization"] == "20.0%" and body["models_cached"] == 3
    assert {(m["worker"], m["name"]) for m in body["models"]} == {
        ("worker-a", "gemma-3-270m"), ("worker-b", "qwen-7b"), ("worker-b", "gemma-3-270m"),
    }  # fmt: skip
    assert body["workers"][1]["utilization"] == "87.4%"


def test_calculate_has_the_documented_fields(client: FlaskClient, fake_worker: Any) -> None:
    fake_worker("worker-a")  # 46.9% used of 16 GiB
    body = client.post("/api/v1/quantization/calculate", json={"model_size_params": 7.0}).get_json()
    assert set(body) >= {"level", "precision", "compression_ratio", "estimated_memory_gb", "config"}
    assert body["level"] == body["precision"] == "int4"
    assert body["compression_ratio"] == "8.0x"
    assert body["config"] == {"load_in_4bit": True, "bnb_4bit_compute_dtype": "float16", "bnb_4bit_quant_type": "nf4"}
    assert body["basis"]["source"] == "worker" and body["basis"]["worker"] == "worker-a"
    assert body["basis"]["load"] == 0 and body["basis"]["thresholds"]["memory_critical"] == 0.85
    quality = client.post(
        "/api/v1/quantization/calculate", json={"model_size_params": 0.27, "task_priority": "quality"}
    )
    assert quality.get_json()["level"] == "fp16"
    gguf = client.post("/api/v1/quantization/calculate", json={"model_size_params": 7, "backend": "gguf"}).get_json()
    assert gguf["config"] == {"gguf_type": "Q4_K_M"}


def test_calculate_sees_the_load(client: FlaskClient, fake_worker: Any) -> None:
    fake_worker("worker-a", memory=memory_gib(64.0, 6.4))
    assert client.post("/api/v1/quantization/calculate", json={"model_size_params": 1}).get_json()["level"] == "fp16"
    client.post("/api/v1/batches", json={"items": [{"text": "busy", "grade_level": 3}] * 12})
    body = client.post("/api/v1/quantization/calculate", json={"model_size_params": 1}).get_json()
    assert body["basis"]["load"] == 12 and body["level"] == "int2"


def test_calculate_without_a_worker_uses_this_host(client: FlaskClient) -> None:
    body = client.post("/api/v1/quantization/calculate", json={"model_size_params": 7}).get_json()
    assert body["basis"]["source"] == "api_host" and "no live worker" in body["basis"]["note"]
    assert body["level"] in ("fp16", "int8", "int4", "int2")


def test_calculate_uses_the_workers_thresholds_not_the_apis(client: FlaskClient, fake_worker: Any) -> None:
    strict = Thresholds(memory_comfortable=0.05, memory_moderate=0.06, memory_tight=0.07, memory_critical=0.08)
    fake_worker("worker-a", memory=memory_gib(64.0, 6.4), thresholds=strict)
    body = client.post("/api/v1/quantization/calculate", json={"model_size_params": 1}).get_json()
    assert body["basis"]["memory_status"] == "emergency" and body["level"] == "int2"
    assert client.get("/api/v1/quantization/memory").get_json()["status"] == "emergency"


BAD_CALCULATIONS: list[tuple[Any, str]] = [
    ({}, "model_size_params"),
    ({"model_size_params": "7B"}, "model_size_params"),
    ({"model_size_params": 0}, "model_size_params"),
    ({"model_size_params": -3}, "model_size_params"),
    ({"model_size_params": True}, "model_size_params"),
    ({"model_size_params": 1e300}, "model_size_params"),
    ({"model_size_params": 7, "task_priority": "fast"}, "task_priority"),
    ({"model_size_params": 7, "task_priority": None}, "task_priority"),
    ({"model_size_params": 7, "backend": "onnx"}, "backend"),
    ({"model_size_params": 7, "level": "int4"}, "level"),
    ([7], "body"),
]


@pytest.mark.parametrize(("payload", "field"), BAD_CALCULATIONS, ids=[str(p) for p, _ in BAD_CALCULATIONS])
def test_calculate_bad_input_names_the_field(
    client: FlaskClient, api_error: ErrorCheck, payload: Any, field: str
) -> None:
    api_error(client.post("/api/v1/quantization/calculate", json=payload), 400, field)


def test_calculate_needs_json(client: FlaskClient, api_error: ErrorCheck) -> None:
    api_error(client.post("/api/v1/quantization/calculate", data="model_size_params=7"), 415, "body")


@pytest.fixture
def acknowledging_worker(redis_db: redis.Redis, fake_worker: Any) -> Iterator[str]:
    """A fake live worker whose 'heartbeat' answers cache-clear requests the way worker.status.Heartbeat does."""
    fake_worker("worker-a")
    stop = threading.Event()
    seen = clear_generation(redis_db)

    def beat() -> None:
        nonlocal seen
        while not stop.is_set():
            generation = clear_generation(redis_db)
            if generation > seen:
                acknowledge_clear(redis_db, generation, "worker-a", ClearReport(freed_mb=253.0, at=1.0))
                seen = generation
            stop.wait(0.05)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    yield "worker-a"
    stop.set()
    thread.join()


def test_cache_clear_waits_for_every_worker(client: FlaskClient, acknowledging_worker: str) -> None:
    started = time.monotonic()
    body = client.post("/api/v1/quantization/cache/clear").get_json()
    assert time.monotonic() - started < 2
    assert body["status"] == "success" and body["message"] == "Cache cleared"
    assert body["workers"] == {"worker-a": {"freed_mb": 253.0, "at": 1.0}} and body["pending"] == []
    assert body["generation"] >= 1


def test_cache_clear_names_a_silent_worker(
    make_app: Callable[..., Flask], acknowledging_worker: str, fake_worker: Any
) -> None:
    fake_worker("worker-silent")
    started = time.monotonic()
    body = make_app(CLEAR_WAIT_SECONDS=0.5).test_client().post("/api/v1/quantization/cache/clear").get_json()
    assert 0.5 <= time.monotonic() - started < 2
    assert body["status"] == "partial" and body["pending"] == ["worker-silent"]
    assert list(body["workers"]) == ["worker-a"] and "worker-silent" in body["message"]


def test_cache_clear_with_no_worker(client: FlaskClient, redis_db: redis.Redis) -> None:
    body = client.post("/api/v1/quantization/cache/clear").get_json()
    assert body["status"] == "success" and body["workers"] == {} and body["pending"] == []
    assert "no worker is alive" in body["message"]
    assert clear_generation(redis_db) == 0


def test_a_worker_that_stops_beating_drops_out(
    make_app: Callable[..., Flask], redis_db: redis.Redis, fake_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_worker("worker-a")
    redis_db.expire("dq:worker:worker-a", 1)
    client: FlaskClient = make_app().test_client()
    assert client.get("/api/v1/quantization/status").get_json()["status"] == "ok"
    time.sleep(1.2)
    assert client.get("/api/v1/quantization/status").get_json()["status"] == "no_workers"
