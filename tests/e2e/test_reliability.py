"""Faults lose nothing: killed and stopped workers, a Redis restart, memory caps; see test_recovery for `dynaquant up`.

Every test runs real Celery worker processes (solo pool, as deployed) and the web app under gunicorn.
Waits poll real state (job records over HTTP, heartbeats and queues in Redis, worker logs), never fixed sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import PrivateServices, Service, wait_until
from worker.jobs import COUNTS_KEY, LATENCY_KEY
from worker.queues import queue_depth
from worker.tasks import simplify_text

pytestmark = [pytest.mark.e2e, pytest.mark.model]

PARAGRAPH = (
    "Photosynthesis is the process by which green plants and some other organisms use sunlight to "
    "synthesize foods from carbon dioxide and water, generating oxygen as a by-product."
)
PLATES = (
    "Plate tectonics is the scientific theory that Earth's lithosphere comprises a number of large tectonic "
    "plates, which have been slowly moving since about 3.4 billion years ago. "
)
LONG_TEXT = (PLATES * 60)[:7900]  # ~1,800 prompt tokens: several seconds of work at fp16 on one thread
MEDIUM_TEXT = (PLATES * 20)[:2000]
HALF_TEXT = (PLATES * 30)[:4000]
SHORT = {"text": PARAGRAPH, "max_tokens": 2, "force_quantization": "int2"}
ONE_PROMPT_UNCHECKED = {"DYNAQUANT_PART_MAX_CHARS": "8000", "DYNAQUANT_QUALITY_GATE": "0"}
"""These tests time delivery, not quality: each job is one prompt (a long text is not cut into parts) and one
attempt (the quality gate, tested in tests/integration/test_quality_gate.py, is off)."""


def submit(svc: Service, headers: dict[str, str] | None = None, **job: Any) -> str:
    """Submit one job over HTTP; it must be accepted."""
    body = {"grade_level": 6, "subject": "Science", **job}
    response = requests.post(svc.url("/api/v1/jobs"), json=body, headers=headers, timeout=10)
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def wait_running(svc: Service, job_id: str, attempts: int = 1) -> dict[str, Any]:
    """Poll the API until the job runs its `attempts`-th time; returns the record it showed."""

    def running() -> dict[str, Any] | None:
        job = svc.job(job_id)
        assert job["status"] in ("queued", "running"), job
        return job if job["status"] == "running" and job["attempts"] >= attempts else None

    return dict(wait_until(running, 90, f"job {job_id} to run (attempt {attempts})", interval=0.05))


def kill_worker(svc: Service, worker: str) -> int:
    """SIGKILL the worker process named `worker` (its pid read from its heartbeat in Redis); returns the pid."""
    short = worker.split("@", 1)[0]
    state = svc.worker_state(short)
    assert state is not None, f"{worker} has no heartbeat"
    proc = svc.procs.pop(short)
    assert state["pid"] == proc.pid, (state["pid"], proc.pid)
    os.kill(state["pid"], signal.SIGKILL)
    proc.wait(10)
    return int(state["pid"])


def counts(svc: Service) -> dict[str, int]:
    """The job counters the workers keep (each terminal write that won adds one)."""
    return {k.decode(): int(v) for k, v in svc.redis.hgetall(COUNTS_KEY).items()}


def log_text(svc: Service, name: str) -> str:
    """Everything a process of the service wrote so far."""
    return Path(svc.logs / f"{name}.log").read_text(errors="replace")


def drained(svc: Service) -> bool:
    """Nothing waits in the queue and nothing is taken but unacknowledged."""
    return queue_depth(svc.redis, [svc.queue]) == 0 and svc.redis.hlen("unacked") == 0


def test_sigkilled_worker_job_is_requeued_by_a_live_workers_heartbeat_and_stored_once(service: Service) -> None:
    # No supervisor here (workers on other machines): the surviving worker's heartbeat finds the dead one's job.
    service.env.update(ONE_PROMPT_UNCHECKED)
    service.env["DYNAQUANT_THREADS"] = "1"
    service.start_worker("w1")
    service.start_worker("w2")
    service.start_web()
    job_id = submit(service, text=HALF_TEXT, max_tokens=16, force_quantization="fp16")
    first = wait_running(service, job_id)
    killed = first["worker"]
    # Kill it mid-generation: once its heartbeat shows the model loaded and the job still active.
    wait_until(
        lambda: (service.worker_state(killed.split("@")[0]) or {}).get("current_models"), 60, f"{killed} to load"
    )
    assert service.job(job_id)["status"] == "running"
    pid = kill_worker(service, killed)
    killed_at = time.time()
    shown = service.job(job_id)
    assert shown["status"] == "running" and shown["worker"] == killed, shown

    final = service.wait_job(job_id, timeout=90)
    assert final["status"] == "succeeded", final
    assert final["attempts"] == 2 and final["result"]["attempt"] == 2
    assert final["worker"] != killed and final["result"]["text"]
    [event] = final["history"]
    assert event["detected_by"] == final["worker"] and event["worker"] == killed, event
    requeued = event["at"] - killed_at
    assert requeued <= 15, f"requeued {requeued:.1f} s after the kill (lease TTL 5 s here, one heartbeat of grace)"
    delay = final["started_at"] - first["started_at"]
    stored = counts(service)
    assert stored.get("succeeded") == 1 and stored.get("failed", 0) == 0, stored
    assert int(service.redis.hget(LATENCY_KEY, "+Inf") or 0) == 1, "the result was observed more than once"
    wait_until(lambda: drained(service), 20, "the queue and unacked to empty")
    print(
        f"\n[kill] killed {killed} (pid {pid}) {killed_at - first['started_at']:.2f} s into the job; requeued by "
        f"{final['worker']}'s heartbeat {requeued:.1f} s after the kill, rerun {delay:.1f} s after the first start; "
        f"attempts {final['attempts']}, results stored {stored.get('succeeded')}; the rerun took "
        f"{final['finished_at'] - final['started_at']:.1f} s"
    )


def test_a_job_that_kills_its_worker_every_time_fails_at_the_redelivery_cap(service: Service) -> None:
    service.env.update(ONE_PROMPT_UNCHECKED)
    cap = 2
    service.env.update(
        {
            "DYNAQUANT_TASK_TIME_LIMIT": "8",
            "DYNAQUANT_VISIBILITY_TIMEOUT": "9",
            "DYNAQUANT_MAX_REDELIVERIES": str(cap),
            "DYNAQUANT_THREADS": "1",
        }
    )
    service.start_worker("w1")
    service.start_worker("w2")
    service.start_web()
    started = time.monotonic()
    job_id = submit(service, text=MEDIUM_TEXT, max_tokens=32, force_quantization="fp16")
    killed: list[tuple[str, int]] = []
    spare = 3
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        job = service.job(job_id)
        if job["status"] == "failed":
            break
        assert job["status"] in ("queued", "running"), job
        if job["status"] == "running" and len(killed) < job["attempts"] <= cap + 1:
            killed.append((job["worker"], kill_worker(service, job["worker"])))
            service.start_worker(f"w{spare}")  # a fresh worker stands by for the redelivery
            spare += 1
        time.sleep(0.05)
    else:
        raise AssertionError(f"job {job_id} never failed; killed {killed}")

    assert len(killed) == cap + 1 and len({pid for _, pid in killed}) == cap + 1, killed
    assert job["attempts"] == cap + 2, job
    error = job["error"]
    assert error["code"] == "redelivery_limit", job
    assert f"limit of {cap} redeliveries" in error["message"] and "DYNAQUANT_MAX_REDELIVERIES" in error["message"]
    assert counts(service).get("failed") == 1
    after = service.wait_job(submit(service, **SHORT), timeout=60)
    assert after["status"] == "succeeded", after
    print(
        f"\n[cap] DYNAQUANT_MAX_REDELIVERIES={cap}: {len(killed)} kills ({', '.join(w for w, _ in killed)}), "
        f"{job['attempts'] - 1} redeliveries, then failed: {error['message']!r} after "
        f"{time.monotonic() - started:.0f} s"
    )


def test_sigterm_mid_job_finishes_it_and_leaves_the_queued_job_for_the_next_worker(service: Service) -> None:
    service.env.update(ONE_PROMPT_UNCHECKED)
    service.env["DYNAQUANT_THREADS"] = "1"
    proc = service.start_worker("w1")
    service.start_web()
    running = submit(service, text=MEDIUM_TEXT, max_tokens=32, force_quantization="fp16")
    waiting = submit(service, **SHORT)
    wait_running(service, running)
    service.stop("w1", signal.SIGTERM, timeout=90)
    assert proc.returncode == 0, proc.returncode

    done = service.job(running)
    assert done["status"] == "succeeded" and done["attempts"] == 1 and done["worker"] == "w1@e2e", done
    left = service.job(waiting)
    assert left["status"] == "queued" and left["attempts"] == 0, left
    assert queue_depth(service.redis, [service.queue]) == 1 and service.redis.hlen("unacked") == 0
    assert "Warm shutdown" in log_text(service, "w1") or "warm shutdown" in log_text(service, "w1")

    service.start_worker("w2")
    later = service.wait_job(waiting, timeout=60)
    assert later["status"] == "succeeded" and later["worker"] == "w2@e2e" and later["attempts"] == 1, later
    print("\n[sigterm] running job finished by the stopping worker (exit 0); queued job run by the next worker")


def test_a_job_still_running_when_its_visibility_timeout_passes_is_not_run_twice(service: Service) -> None:
    service.env.update(ONE_PROMPT_UNCHECKED)
    service.env.update({"DYNAQUANT_TASK_TIME_LIMIT": "60", "DYNAQUANT_VISIBILITY_TIMEOUT": "61"})
    service.env["DYNAQUANT_THREADS"] = "1"
    service.start_worker("w1")
    service.start_worker("w2")
    service.start_web()
    job_id = submit(service, text=LONG_TEXT, max_tokens=16, force_quantization="fp16")
    owner = wait_running(service, job_id)["worker"]
    other = "w2" if owner == "w1@e2e" else "w1"
    # Back-date the delivery as if the job had been out longer than the visibility timeout: the idle
    # worker's periodic sweep (kombu's restore_visible) then puts it back on the queue and takes it.
    unacked = service.redis.hgetall("unacked").items()
    tags = [tag for tag, raw in unacked if json.loads(raw)[0]["headers"]["id"] == job_id]
    assert len(tags) == 1, tags
    service.redis.zadd("unacked_index", {tags[0]: 0})
    wait_until(lambda: f"job {job_id} is running on {owner}" in log_text(service, other), 30, "the redelivery")
    assert service.job(job_id)["status"] == "running", "the redelivery must not end the job"

    final = service.wait_job(job_id, timeout=120)
    assert final["status"] == "succeeded", final
    assert final["attempts"] == 1 and final["worker"] == owner and final["result"]["attempt"] == 1, final
    wait_until(lambda: drained(service), 30, "the deferred copy to be taken and skipped")
    assert counts(service).get("succeeded") == 1
    assert simplify_text.max_retries is None, "Celery would drop a deferred copy after its default 3 retries"
    deferrals = sum(log_text(service, name).count(f"job {job_id} is running on") for name in ("w1", "w2"))
    print(f"\n[long job] redelivered while running on {owner}: deferred {deferrals}x, run once, stored once")


def test_the_worker_enforces_the_task_time_limit(service: Service) -> None:
    service.env.update(ONE_PROMPT_UNCHECKED)
    service.env.update({"DYNAQUANT_TASK_TIME_LIMIT": "4", "DYNAQUANT_VISIBILITY_TIMEOUT": "30"})
    service.start_worker("w1", {"DYNAQUANT_THREADS": "1"})
    service.start_web()
    job = service.wait_job(submit(service, text=LONG_TEXT, max_tokens=400, force_quantization="fp16"), timeout=120)
    assert job["status"] == "failed" and job["error"]["code"] == "time_limit", job
    assert "DYNAQUANT_TASK_TIME_LIMIT" in job["error"]["message"] and "4 s" in job["error"]["message"]
    quick = {"text": PARAGRAPH, "max_tokens": 4, "force_quantization": "fp16"}  # fp16 is loaded: well within 4 s
    assert service.wait_job(submit(service, **quick), timeout=60)["status"] == "succeeded"
    print(f"\n[time limit] stopped after {job['finished_at'] - job['started_at']:.1f} s: {job['error']['message']!r}")


def api_down_answer(svc: Service, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """Call the API while Redis is down: a 503 with the JSON error object and no stack trace."""
    response = requests.request(method, svc.url(path), timeout=15, **kwargs)
    assert response.status_code == 503, (path, response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json")
    assert "Traceback" not in response.text and 'File "' not in response.text
    body: dict[str, Any] = response.json()
    assert body["error"]["code"] in ("redis_unavailable", "broker_unavailable"), body
    return body


def test_redis_restart_with_persistence_loses_no_accepted_job(private: PrivateServices) -> None:
    server = private.redis_server()
    svc = private.service(server.url())
    svc.env.update(ONE_PROMPT_UNCHECKED)
    svc.env["DYNAQUANT_THREADS"] = "1"
    worker = svc.start_worker("w1")
    svc.start_web()
    running = submit(svc, text=LONG_TEXT, max_tokens=16, force_quantization="fp16")
    wait_running(svc, running)
    waiting = [submit(svc, **SHORT, priority=p) for p in (0, 3, 5, 9, 9)]
    assert queue_depth(svc.redis, [svc.queue]) == 5

    server.stop()  # SIGTERM: Redis writes its append-only file and exits, as `docker compose restart redis` does
    down_at = time.monotonic()
    body = api_down_answer(svc, "GET", f"/api/v1/jobs/{running}")
    api_down_answer(svc, "GET", "/api/v1/jobs")
    api_down_answer(svc, "POST", "/api/v1/jobs", json={"text": PARAGRAPH, "grade_level": 5})
    assert requests.get(svc.url("/readyz"), timeout=10).status_code == 503
    # The running job ends while Redis is down: its worker holds the result until Redis is back.
    wait_until(lambda: f"could not store job {running}" in log_text(svc, "w1"), 90, "the worker to hold the result")
    server.start()
    restarted = time.time()
    outage = time.monotonic() - down_at

    jobs = {job_id: svc.wait_job(job_id, timeout=120) for job_id in [running, *waiting]}
    assert all(job["status"] == "succeeded" for job in jobs.values()), jobs
    assert jobs[running]["attempts"] == 1, "the running job's result was stored after the restart, not rerun"
    assert worker.poll() is None, "the worker reconnected by itself"
    wait_until(lambda: (svc.worker_state("w1") or {}).get("heartbeat_at", 0) > restarted, 10, "a fresh heartbeat")
    after = svc.wait_job(submit(svc, **SHORT), timeout=60)
    assert after["status"] == "succeeded", after
    print(
        f"\n[redis restart] down {outage:.1f} s; 503 {body['error']['code']!r} while down; "
        f"{len(jobs)} accepted jobs all succeeded after the restart (running one stored once, attempts 1)"
    )


def test_a_retry_with_the_same_idempotency_key_gets_the_same_job(service: Service) -> None:
    service.env.update(ONE_PROMPT_UNCHECKED)
    service.start_worker("w1", {"DYNAQUANT_THREADS": "1"})
    service.start_web()
    body = {"text": PARAGRAPH, "grade_level": 5, "max_tokens": 8, "force_quantization": "int4"}
    headers = {"Idempotency-Key": "client-retry-7f3a"}
    first = requests.post(service.url("/api/v1/jobs"), json=body, headers=headers, timeout=10)
    again = requests.post(service.url("/api/v1/jobs"), json=body, headers=headers, timeout=10)
    assert first.status_code == 202 and again.status_code == 200, (first.text, again.text)
    assert again.headers.get("Idempotent-Replayed") == "true"
    job_id = first.json()["job_id"]
    assert again.json()["job_id"] == job_id

    racing = {"Idempotency-Key": "racing-retries-91c2"}

    def retry(_: int) -> requests.Response:
        return requests.post(service.url("/api/v1/jobs"), json=body, headers=racing, timeout=10)

    with ThreadPoolExecutor(max_workers=8) as pool:
        raced = list(pool.map(retry, range(8)))
    raced_ids = {r.json()["job_id"] for r in raced}
    assert len(raced_ids) == 1 and sorted(r.status_code for r in raced).count(202) == 1, [r.text for r in raced]

    for one in (job_id, *raced_ids):
        job = service.wait_job(one)
        assert job["status"] == "succeeded" and job["attempts"] == 1, job
    assert counts(service)["submitted"] == 2 and counts(service)["succeeded"] == 2
    assert requests.get(service.url("/api/v1/jobs"), timeout=5).json()["count"] == 2
    print("\n[idempotency] 2 requests with one key -> 1 job; 8 racing requests with another key -> 1 job; 2 jobs ran")


def test_memory_caps_pick_a_level_that_fits_or_fail_clearly_and_the_worker_survives(service: Service) -> None:
    service.env.update(ONE_PROMPT_UNCHECKED)
    service.env["DYNAQUANT_THREADS"] = "1"
    service.start_web()
    roomy = service.start_worker("w400", {"MAX_MODEL_CACHE_MB": "400"})
    quality = {"text": PARAGRAPH, "max_tokens": 8, "task_priority": "quality"}
    levels = []
    for _ in range(2):
        job = service.wait_job(submit(service, **quality), timeout=120)
        assert job["status"] == "succeeded", job
        levels.append(job["result"]["level"])
    assert "fp16" not in levels, levels
    assert roomy.poll() is None
    service.stop("w400")

    tight = service.start_worker("w100", {"MAX_MODEL_CACHE_MB": "100"})
    errors = []
    for _ in range(2):
        job = service.wait_job(submit(service, **quality), timeout=60)
        assert job["status"] == "failed" and job["error"]["code"] == "insufficient_memory", job
        assert "MAX_MODEL_CACHE_MB is 100 MB" in job["error"]["message"]
        errors.append(job["error"]["message"])
    assert tight.poll() is None, "the worker survives a job that does not fit"
    state = wait_until(lambda: (service.worker_state("w100") or {}).get("jobs_done") == 2, 10, "the heartbeat")
    assert state and service.worker_state("w100")["pid"] == tight.pid  # type: ignore[index]
    print(f"\n[memory] cap 400 MB: quality jobs ran at {levels}; cap 100 MB: {errors[0]!r}; worker alive")
