"""Real service processes for the end-to-end tests and the benchmarks: Celery workers and the web app under
gunicorn, started as `dynaquant up` starts them (solo pool, task events; 1 gunicorn process, 8 threads), on a
Redis DB claimed for the run and a queue of its own.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(url: str) -> bool:
    """Whether a GET of the URL answers 200 now."""
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll until check() returns something truthy, or fail saying what never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def claim_redis_db(base_url: str, dbs: Iterable[int], claim_key: str, seconds: int) -> str:
    """A Redis DB no other run holds (claimed for `seconds`), emptied but for the claim; its URL."""
    for db in dbs:
        url = f"{base_url}/{db}"
        client = redis.Redis.from_url(url)
        if client.set(claim_key, os.getpid(), nx=True, ex=seconds):
            for key in client.scan_iter():
                if key != claim_key.encode():
                    client.delete(key)
            return url
    raise RuntimeError(f"every Redis DB in {list(dbs)} is claimed by another run")


@dataclass
class Service:
    """The environment of one service instance and the processes started in it (named `<name>@<tag>`)."""

    redis_url: str
    queue: str
    env: dict[str, str]
    logs: Path
    tag: str = "e2e"
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    base_url: str = ""

    @property
    def redis(self) -> redis.Redis:
        """A client on the service's Redis DB."""
        return redis.Redis.from_url(self.redis_url)

    def spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a process in its own session, with the service's environment, its output in <logs>/<name>.log."""
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the child's lifetime
        proc = subprocess.Popen(
            argv, cwd=ROOT, env={**self.env, **(extra_env or {})}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.procs[name] = proc
        return proc

    def start_worker(
        self, name: str = "w1", extra_env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.Popen[bytes]:
        """Start a real Celery worker (solo pool, task events on) and wait for its heartbeat in Redis."""
        argv = [sys.executable, "-m", "celery", "-A", "worker.tasks", "worker", "--pool", "solo", "-Q", self.queue]
        argv += ["-n", f"{name}@{self.tag}", "--loglevel", "INFO", "-E", "--without-mingle", "--without-gossip"]
        proc = self.spawn(name, argv, extra_env)
        wait_until(lambda: self.redis.exists(f"dq:worker:{name}@{self.tag}"), timeout, f"worker {name}'s heartbeat")
        return proc

    def start_web(self, extra_env: dict[str, str] | None = None) -> None:
        """Start the web app under gunicorn and wait until it answers."""
        port = free_port()
        argv = [sys.executable, "-m", "gunicorn", "webapp.wsgi:app", "--bind", f"127.0.0.1:{port}"]
        argv += ["--workers", "1", "--threads", "8", "--timeout", "60", "--access-logfile", "-"]
        self.spawn("web", argv, extra_env)
        self.base_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(self.url("/healthz")), 60, "the web app")

    def url(self, path: str) -> str:
        """Absolute URL of an API path."""
        return self.base_url + path

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        """Stop one process (its whole group) and wait for it; SIGKILL after the timeout."""
        proc = self.procs.pop(name)
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def stop_all(self) -> None:
        """Stop every process this service started."""
        for name in list(self.procs):
            self.stop(name)
