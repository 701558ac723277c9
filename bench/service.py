"""The whole service for the benchmarks: real Celery workers and the web app under gunicorn on a Redis DB.

It starts processes the way `dynaquant up` and tests/e2e/conftest.py do (solo pool, one job at a time per
worker; gunicorn with 1 process and 8 threads), on its own Redis DB (claimed from 11-15, so test runs on DBs
1-10 and other benchmarks stay apart) and its own queue name.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests

from bench.common import RESULTS, ROOT, THREADS, VARIANTS, python

BENCH_REDIS_DBS = range(11, 16)
CLAIM_KEY = "dq:bench:claim"
BASE_REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
TERMINAL = ("succeeded", "failed", "cancelled")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll until check() returns something truthy, or raise saying what never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class Service:
    """One service instance: its environment, processes and HTTP helpers."""

    redis_url: str
    queue: str
    env: dict[str, str]
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    base_url: str = ""
    http: requests.Session = field(default_factory=requests.Session)

    @property
    def redis(self) -> redis.Redis:
        """A client on the service's Redis DB."""
        return redis.Redis.from_url(self.redis_url)

    def spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a process in its own session, its output appended to bench/results/logs/<name>.log."""
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the child's lifetime
        proc = subprocess.Popen(
            argv, cwd=ROOT, env={**self.env, **(extra_env or {})}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.procs[name] = proc
        return proc

    def start_worker(self, name: str = "w1", extra_env: dict[str, str] | None = None) -> str:
        """Start a Celery worker (solo pool, task events on, as `dynaquant up`); wait for its heartbeat."""
        argv = [python(), "-m", "celery", "-A", "worker.tasks", "worker", "--pool", "solo", "-Q", self.queue]
        argv += ["-n", f"{name}@bench", "--loglevel", "INFO", "-E", "--without-mingle", "--without-gossip"]
        self.spawn(name, argv, extra_env)
        wait_until(lambda: self.redis.exists(f"dq:worker:{name}@bench"), 120, f"worker {name}'s heartbeat")
        return f"{name}@bench"

    def start_web(self, extra_env: dict[str, str] | None = None) -> None:
        """Start the web app under gunicorn (1 process, 8 threads, as `dynaquant up`) and wait until it answers."""
        port = free_port()
        argv = [python(), "-m", "gunicorn", "webapp.wsgi:app", "--bind", f"127.0.0.1:{port}"]
        argv += ["--workers", "1", "--threads", "8", "--timeout", "60", "--access-logfile", "-"]
        self.spawn("web", argv, extra_env)
        self.base_url = f"http://127.0.0.1:{port}"
        wait_until(self._answers, 60, "the web app")

    def _answers(self) -> bool:
        try:
            return requests.get(self.base_url + "/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stop(self, name: str, timeout: float = 30) -> None:
        """Stop one process (its whole group): SIGTERM, then SIGKILL after the timeout."""
        proc = self.procs.pop(name)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def stop_all(self) -> None:
        """Stop every process this service started."""
        for name in list(self.procs):
            self.stop(name)

    def url(self, path: str) -> str:
        """Absolute URL of an API path."""
        return self.base_url + path

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
                    records[job_id] = record
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

    def clear_queue(self) -> None:
        """Drop every waiting job from the queue's lists (the worker never sees them)."""
        from worker.queues import priority_queue_names

        client = self.redis
        client.delete(*priority_queue_names(self.queue))


def claim_redis_db() -> str:
    """A Redis DB in 11-15 that no other benchmark holds, emptied for this run."""
    for db in BENCH_REDIS_DBS:
        url = f"{BASE_REDIS}/{db}"
        client = redis.Redis.from_url(url)
        if client.set(CLAIM_KEY, os.getpid(), nx=True, ex=3600):
            for key in client.scan_iter():
                if key != CLAIM_KEY.encode():
                    client.delete(key)
            return url
    raise RuntimeError(f"every Redis DB in {list(BENCH_REDIS_DBS)} is claimed by another benchmark run")


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
