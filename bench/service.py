"""The whole service for the benchmarks: real Celery workers and the web app under gunicorn on a Redis DB.

It starts the processes as the end-to-end tests do (tests/processes.py: solo pool, one job at a time per worker;
gunicorn with 1 process and 8 threads), on its own Redis DB (claimed from 11-15, so test runs on DBs 1-10 and
other benchmarks stay apart) and its own queue name.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
import requests

from bench.common import RESULTS, THREADS, VARIANTS
from tests import processes
from tests.processes import wait_until

BENCH_REDIS_DBS = range(11, 16)
CLAIM_KEY = "dq:bench:claim"
BASE_REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass
class Service(processes.Service):
    """One service instance (tests/processes.py), with the HTTP calls the benchmarks make."""

    tag: str = "bench"
    http: requests.Session = field(default_factory=requests.Session)

    def submit(self, job: dict[str, Any]) -> str:
        """POST one job; its id."""
        response = self.http.post(self.url("/api/v1/jobs"), json=job, timeout=30)
        response.raise_for_status()
        return str(response.json()["job_id"])

    def submit_batch(self, items: list[dict[str, Any]]) -> tuple[str, list[str]]:
        """POST a batch at once; its id and its job ids."""
        response = self.http.post(self.url("/api/v1/batches"), json={"items": items}, timeout=60)
        response.raise_for_status()
        body = response.json()
        return str(body["batch_id"]), [str(j) for j in body["job_ids"]]

    def job(self, job_id: str) -> dict[str, Any]:
        """A job's record."""
        return dict(self.http.get(self.url(f"/api/v1/jobs/{job_id}"), timeout=30).json())

    def wait_job(self, job_id: str, timeout: float = 300, interval: float = 0.1) -> dict[str, Any]:
        """Poll a job until it ends."""

        def done() -> dict[str, Any] | None:
            body = self.job(job_id)
            return body if body["status"] in TERMINAL else None

        return dict(wait_until(done, timeout, f"job {job_id}", interval))

    def wait_jobs(self, job_ids: list[str], timeout: float, interval: float = 0.5) -> dict[str, dict[str, Any]]:
        """Poll many jobs until all ended or the timeout passed; the last record of each."""
        from worker.jobs import JobStore

        store = JobStore(self.redis)
        deadline = time.monotonic() + timeout
        records: dict[str, dict[str, Any]] = {}
        pending = list(job_ids)
        while pending and time.monotonic() < deadline:
            for job_id, record in zip(pending, store.get_many(pending), strict=True):
                if record is not None:
                    records[job_id] = record.model_dump(mode="json")
            pending = [j for j in pending if records.get(j, {}).get("status") not in TERMINAL]
            if pending:
                time.sleep(interval)
        return records

    def status(self) -> dict[str, Any]:
        """GET /api/v1/quantization/status."""
        return dict(self.http.get(self.url("/api/v1/quantization/status"), timeout=10).json())

    def metric(self, name: str) -> float | None:
        """One unlabelled value from /metrics (0 when absent, None when the scrape failed)."""
        try:
            text = self.http.get(self.url("/metrics"), timeout=10).text
        except requests.RequestException:
            return None
        found = re.search(rf"^{re.escape(name)}(?:_total)? ([0-9.eE+-]+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    def wait_calibrated(self, timeout: float = 300) -> float:
        """Wait until a worker has calibrated its host (a host's steady state); the seconds it took."""
        from worker.calibration import DONE_PREFIX

        started = time.monotonic()
        wait_until(lambda: self.redis.keys(f"{DONE_PREFIX}*") or None, timeout, "the host's calibration", 0.5)
        return time.monotonic() - started

    def clear_queue(self) -> None:
        """Drop every waiting job from the queue's lists (the worker never sees them)."""
        from worker.queues import priority_queue_names

        client = self.redis
        client.delete(*priority_queue_names(self.queue))


def claim_redis_db() -> str:
    """A Redis DB in 11-15 that no other benchmark holds, emptied for this run."""
    return processes.claim_redis_db(BASE_REDIS, BENCH_REDIS_DBS, CLAIM_KEY, 3600)


@contextlib.contextmanager
def running_service(extra_env: dict[str, str] | None = None) -> Iterator[Service]:
    """A fresh service namespace (Redis DB, queue, variants in bench/results/variants); processes stopped after."""
    url = claim_redis_db()
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "API_TOKEN"}
    env.update(
        REDIS_URL=url,
        DYNAQUANT_QUEUE=f"bench-{uuid.uuid4().hex[:8]}",
        DYNAQUANT_VARIANTS_DIR=str(VARIANTS),
        DYNAQUANT_THREADS=str(THREADS),
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        **(extra_env or {}),
    )
    svc = Service(redis_url=url, queue=env["DYNAQUANT_QUEUE"], env=env, logs=logs)
    try:
        yield svc
    finally:
        svc.stop_all()
        client = redis.Redis.from_url(url)
        client.flushdb()
