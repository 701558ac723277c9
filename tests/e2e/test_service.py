"""The whole service over HTTP: real Redis, real Celery worker processes, the bundled model."""

from __future__ import annotations

import sys

import pytest
import requests

from tests.e2e.conftest import Service, answers, free_port, wait_until
from tests.texts import DOCUMENT
from worker.policy import rank

pytestmark = [pytest.mark.e2e, pytest.mark.model]

PARAGRAPHS = [
    "Photosynthesis is the process by which green plants and some other organisms use sunlight to "
    "synthesize foods from carbon dioxide and water, generating oxygen as a by-product.",
    "The French Revolution was a period of radical political and societal change in France that began "
    "with the Estates General of 1789 and ended with the formation of the French Consulate in 1799.",
    "Plate tectonics is the scientific theory that Earth's lithosphere comprises a number of large "
    "tectonic plates, which have been slowly moving since about 3.4 billion years ago.",
    "Inflation is a general increase in the prices of goods and services in an economy, which reduces "
    "the purchasing power of money over time.",
    "The mitochondrion is an organelle found in the cells of most eukaryotes that uses aerobic "
    "respiration to generate adenosine triphosphate, which is used throughout the cell as energy.",
]
SUBJECTS = ["Science", "History", "Geography", "Economics", "Biology"]
TOPICS = (("moon",), ("volcano", "lava", "rock"), ("bee", "honey"), ("thermometer", "temperature", "liquid"))
"""Words one of which each paragraph's rewrite keeps: the paragraphs come back in order, none lost or swapped."""


def submit(svc: Service, **job: object) -> str:
    """Queue one job; the quality gate is off unless the test asks (one draft per job keeps timings short)."""
    body = {"grade_level": 6, "subject": "Science", "max_tokens": 48, "quality_check": False, **job}
    response = requests.post(svc.url("/api/v1/jobs"), json=body, timeout=10)
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def wait_running(svc: Service, job_id: str) -> None:
    def running() -> bool:
        status = requests.get(svc.url(f"/api/v1/jobs/{job_id}"), timeout=5).json()["status"]
        assert status in ("queued", "running"), f"blocker ended too early: {status}"
        return status == "running"

    wait_until(running, 60, f"job {job_id} to start", interval=0.05)


def test_batch_of_five_texts_completes_with_levels(service: Service) -> None:
    service.start_worker()
    service.start_web()
    items = [{"text": p, "subject": s} for p, s in zip(PARAGRAPHS, SUBJECTS, strict=True)]
    response = requests.post(
        service.url("/api/v1/batches"), json={"items": items, "defaults": {"grade_level": 5, "max_tokens": 48}}
    )
    assert response.status_code == 202, response.text
    batch = response.json()
    assert len(batch["job_ids"]) == 5

    jobs = [service.wait_job(job_id) for job_id in batch["job_ids"]]
    for job in jobs:
        assert job["status"] == "succeeded", job
        result = job["result"]
        assert result["text"].strip(), job
        assert result["level"] in ("fp16", "int8", "int4", "int2")
        assert result["model"] == "gemma-3-270m"
        assert result["tokens_out"] > 0
    summary = requests.get(service.url(f"/api/v1/batches/{batch['batch_id']}")).json()
    assert summary["counts"]["succeeded"] == 5 and summary["done"] is True


def test_priority_zero_overtakes_waiting_priority_nine(service: Service) -> None:
    service.start_worker()
    service.start_web()
    blocker = submit(service, text=PARAGRAPHS[1], force_quantization="fp16", max_tokens=160)
    wait_running(service, blocker)
    items = [{"text": PARAGRAPHS[i], "priority": 9} for i in (0, 2, 3)] + [{"text": PARAGRAPHS[4], "priority": 0}]
    defaults = {"grade_level": 6, "quality_check": False}
    response = requests.post(service.url("/api/v1/batches"), json={"items": items, "defaults": defaults})
    assert response.status_code == 202, response.text
    *low, high = response.json()["job_ids"]
    finished = {job_id: service.wait_job(job_id) for job_id in [blocker, *low, high]}
    assert all(job["status"] == "succeeded" for job in finished.values()), finished
    assert finished[high]["started_at"] < min(finished[j]["started_at"] for j in low)


def test_cancel_a_queued_job(service: Service) -> None:
    service.start_worker()
    service.start_web()
    blocker = submit(service, text=PARAGRAPHS[1], force_quantization="fp16", max_tokens=160)
    wait_running(service, blocker)
    queued = submit(service, text=PARAGRAPHS[0])
    response = requests.delete(service.url(f"/api/v1/jobs/{queued}"))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert service.wait_job(blocker)["status"] == "succeeded"
    after = submit(service, text=PARAGRAPHS[2])
    assert service.wait_job(after)["status"] == "succeeded"
    job = requests.get(service.url(f"/api/v1/jobs/{queued}")).json()
    assert job["status"] == "cancelled" and job["result"] is None and job["started_at"] is None
    assert requests.delete(service.url(f"/api/v1/jobs/{queued}")).status_code == 409


def test_status_shows_worker_model_and_level_and_clear_empties_cache(service: Service) -> None:
    service.start_worker()
    service.start_web()
    job = service.wait_job(submit(service, text=PARAGRAPHS[0], force_quantization="int4"))
    assert job["status"] == "succeeded", job

    def cached() -> dict | None:
        body = requests.get(service.url("/api/v1/quantization/status")).json()
        return body if body["current_models"] else None

    status = wait_until(cached, 10, "the worker to report its cached model")
    assert [w["worker"] for w in status["workers"]] == ["w1@e2e"]
    model = status["current_models"][0]
    assert model["name"] == "gemma-3-270m" and model["level"] == "int4" and model["size_mb"] > 100
    assert status["device"] == "cpu" and status["recommended_level"] in ("fp16", "int8", "int4", "int2")
    assert status["memory"]["total_gb"] > 0

    cache = requests.get(service.url("/api/v1/quantization/cache")).json()
    assert cache["models_cached"] == 1
    cleared = requests.post(service.url("/api/v1/quantization/cache/clear"))
    assert cleared.status_code == 200 and cleared.json()["status"] == "success"
    assert "w1@e2e" in cleared.json()["workers"]
    wait_until(
        lambda: requests.get(service.url("/api/v1/quantization/cache")).json()["models_cached"] == 0,
        10,
        "the cache to empty",
    )


def test_calculate_has_the_documented_fields(service: Service) -> None:
    service.start_worker()
    service.start_web()
    body = requests.post(
        service.url("/api/v1/quantization/calculate"), json={"model_size_params": 7.0, "task_priority": "balanced"}
    ).json()
    assert set(body) >= {"level", "precision", "compression_ratio", "estimated_memory_gb", "config"}
    assert body["compression_ratio"] == {"fp16": "2.0x", "int8": "4.0x", "int4": "8.0x", "int2": "16.0x"}[body["level"]]


def test_level_falls_under_load(service: Service) -> None:
    service.start_worker(extra_env={"QUANTIZE_CONSECUTIVE": "1"})
    service.start_web()
    lone = service.wait_job(submit(service, text=PARAGRAPHS[0], max_tokens=24))
    assert lone["status"] == "succeeded", lone
    items = [{"text": PARAGRAPHS[i % 5], "max_tokens": 16} for i in range(14)]
    response = requests.post(service.url("/api/v1/batches"), json={"items": items, "defaults": {"grade_level": 6}})
    busy = [service.wait_job(job_id, timeout=180) for job_id in response.json()["job_ids"]]
    busy_levels = [job["result"]["level"] for job in busy if job["status"] == "succeeded"]
    assert len(busy_levels) == 14
    lone_level = lone["result"]["level"]
    assert lone["result"]["load"] <= 1 and lone_level == "fp16"
    lower = [level for level in busy_levels if rank(level) > rank(lone_level)]
    assert len(lower) >= len(busy_levels) // 2, (lone_level, busy_levels)
    crowded = [job["result"] for job in busy if job["result"]["load"] > 10]
    assert crowded and all(result["level"] == "int2" for result in crowded), crowded


def test_flower_lists_the_worker_and_its_tasks(service: Service) -> None:
    service.start_worker()
    service.start_web()
    flower = service.start_flower()
    job_id = submit(service, text=PARAGRAPHS[0], max_tokens=16)
    assert service.wait_job(job_id)["status"] == "succeeded"
    tasks = wait_until(
        lambda: requests.get(f"{flower}/api/tasks", timeout=5).json().get(job_id), 30, "Flower to see the task"
    )
    assert tasks["name"] == "worker.tasks.simplify_text" and tasks["state"] == "SUCCESS"
    workers = wait_until(
        lambda: requests.get(f"{flower}/api/workers?refresh=1", timeout=10).json(), 30, "Flower to list workers"
    )
    assert "w1@e2e" in workers


def test_dynaquant_up_serves_flowers_api_on_localhost(service: Service) -> None:
    web, flower = free_port(), free_port()
    argv = [sys.executable, "-m", "dynaquant.cli", "up", "--port", str(web), "--flower-port", str(flower)]
    service.spawn("up", argv, {"DYNAQUANT_HOME": str(service.logs / "home")})
    wait_until(lambda: answers(f"http://127.0.0.1:{web}/healthz"), 60, "the web app under dynaquant up")
    wait_until(lambda: answers(f"http://127.0.0.1:{flower}/healthcheck"), 60, "Flower under dynaquant up")
    workers = wait_until(
        lambda: requests.get(f"http://127.0.0.1:{flower}/api/workers?refresh=1", timeout=10).json(),
        60,
        "Flower's API to list the worker",
    )
    assert any(name.startswith("worker1@") for name in workers), workers


def test_a_four_paragraph_document_comes_back_as_four_paragraphs_each_with_a_report(service: Service) -> None:
    service.start_worker()
    service.start_web()
    job = service.wait_job(submit(service, text=DOCUMENT, grade_level=5, max_tokens=64, quality_check=True), 300)
    assert job["status"] == "succeeded", job
    result = job["result"]
    paragraphs = result["text"].split("\n\n")
    assert len(paragraphs) == 4 and all(p.strip() for p in paragraphs), result["text"]
    for text, topic in zip(paragraphs, TOPICS, strict=True):
        assert any(word in text.lower() for word in topic), f"the paragraph about {topic[0]!r} kept it: {text!r}"
    assert [p["index"] for p in result["paragraphs"]] == [1, 2, 3, 4]
    assert [p["text"] for p in result["paragraphs"]] == paragraphs
    for paragraph in result["paragraphs"]:
        report = paragraph["quality"]
        assert report["target_grade"] == 5 and report["verdict"] in ("pass", "needs_review")
        assert bool(report["reasons"]) == (report["verdict"] == "needs_review")
    every_pass = all(p["quality"]["verdict"] == "pass" for p in result["paragraphs"])
    assert (result["quality"]["verdict"] == "pass") == every_pass
    assert {a["paragraph"] for a in result["attempts"]} == {1, 2, 3, 4}

    too_long = "\n\n".join([DOCUMENT] * 40)
    response = requests.post(service.url("/api/v1/jobs"), json={"text": too_long, "grade_level": 5}, timeout=10)
    assert response.status_code == 400 and response.json()["error"]["field"] == "text"
    assert "DYNAQUANT_MAX_TEXT_CHARS" in response.json()["error"]["message"]
    listed = requests.get(service.url("/api/v1/jobs"), timeout=5).json()
    assert [j["job_id"] for j in listed["jobs"]] == [job["job_id"]], "the refused text queued nothing, lost nothing"
