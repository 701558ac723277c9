"""Real processes for end-to-end tests: Celery workers and the web app over HTTP, on a real Redis."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from dynaquant.up import flower_argv, flower_env
from tests import processes
from tests.processes import ROOT, answers, free_port, wait_until
from worker.prepare import prepare
from worker.registry import Registry
from worker.settings import SMALL_MODEL

E2E_REDIS_DBS = range(1, 11)
CLAIM_KEY = "dq:e2e:claim"
BASE_REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
OUTPUT = ROOT / "test-output"


class Service(processes.Service):
    """A service under test, with its API and Flower as the tests read them."""

    def start_flower(self, basic_auth: str | None = None) -> str:
        """Start Flower on a free port as `dynaquant up` does (its own argv and environment); its URL."""
        port = free_port()
        flower = {k: v for k, v in flower_env(basic_auth=basic_auth).items() if k.startswith("FLOWER_")}
        self.spawn("flower", flower_argv(port, basic_auth=basic_auth), flower)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(f"{url}/healthcheck"), 30, "Flower")
        return url

    def job(self, job_id: str) -> dict[str, Any]:
        """A job's record as the API shows it."""
        response = requests.get(self.url(f"/api/v1/jobs/{job_id}"), timeout=5)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def worker_state(self, name: str) -> dict[str, Any] | None:
        """A worker's last heartbeat in Redis (pid, active job, ...), None once it stopped beating."""
        raw = self.redis.get(f"dq:worker:{name}@e2e")
        return json.loads(raw) if raw else None

    def wait_job(self, job_id: str, timeout: float = 120) -> dict[str, Any]:
        """Poll a job over HTTP until it ends."""

        def done() -> dict[str, Any] | None:
            body = requests.get(self.url(f"/api/v1/jobs/{job_id}"), timeout=5).json()
            return body if body["status"] in ("succeeded", "failed", "cancelled") else None

        return wait_until(done, timeout, f"job {job_id} to finish", interval=0.3)


@pytest.fixture(scope="session")
def variants_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One variants directory for the whole run with every level of the small model built (as `dynaquant prepare`
    does), so a dynamic choice is never moved for want of a build."""
    folder = Path(os.environ.get("DYNAQUANT_TEST_VARIANTS_DIR") or tmp_path_factory.mktemp("variants"))
    prepare(Registry().get(SMALL_MODEL), folder, 2, say=lambda _line: None)
    return folder


def claim_redis_db() -> str:
    """A Redis DB no other test process is using, claimed for this test (parallel runs stay apart)."""
    return processes.claim_redis_db(BASE_REDIS, E2E_REDIS_DBS, CLAIM_KEY, 900)


def make_service(url: str, logs: Path, variants_dir: Path) -> Service:
    """A service namespace on the Redis at `url`, with a fresh queue name; nothing started yet."""
    queue = f"e2e-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if k != "FLOWER_UNAUTHENTICATED_API"}
    env = {
        **env,
        "REDIS_URL": url,
        "DYNAQUANT_QUEUE": queue,
        "DYNAQUANT_VARIANTS_DIR": str(variants_dir),
        "DYNAQUANT_HEARTBEAT_SECONDS": "0.5",
        "DYNAQUANT_THREADS": "2",
        "DYNAQUANT_DEFAULT_MODEL": SMALL_MODEL,  # what these tests check does not depend on the text written
        "DYNAQUANT_CALIBRATE": "0",  # a test that wants calibration or shadow runs sets them
        "DYNAQUANT_SHADOW_SHARE": "0",
        "DYNAQUANT_PRIOR": "0",  # the matrix moves every level here: the prior would keep the small model at int4
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    logs.mkdir(parents=True, exist_ok=True)
    return Service(redis_url=url, queue=queue, env=env, logs=logs)


@pytest.fixture
def service(tmp_path: Path, variants_dir: Path) -> Iterator[Service]:
    """A fresh service namespace: its own Redis DB and queue; processes stopped afterwards."""
    url = claim_redis_db()
    svc = make_service(url, tmp_path, variants_dir)
    try:
        yield svc
    finally:
        svc.stop_all()
        redis.Redis.from_url(url).flushdb()


@dataclass
class RedisServer:
    """A private redis-server on a free port, keeping an append-only file (as docker-compose.yml does)."""

    data_dir: Path
    password: str | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def url(self, password: str | None = None, db: int = 0) -> str:
        """Its URL, with this server's password unless another one is given."""
        secret = password if password is not None else self.password
        auth = f":{secret}@" if secret else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        """Start (or restart, on the same port and data) and wait until it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir)]
        argv += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--protected-mode", "no"]
        if self.password:
            argv += ["--requirepass", self.password]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "redis.log", "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        client = redis.Redis.from_url(self.url(), socket_connect_timeout=1)
        wait_until(lambda: self._pings(client), 20, f"redis-server on port {self.port}", interval=0.05)

    @staticmethod
    def _pings(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:  # refused, or still loading its append-only file
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGTERM: a clean shutdown that writes the append-only file) and wait until it is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class PrivateServices:
    """Private redis-servers and services bound to them; everything is stopped at the end of the test."""

    def __init__(self, root: Path, variants_dir: Path) -> None:
        self.root = root
        self.variants_dir = variants_dir
        self.servers: list[RedisServer] = []
        self.services: list[Service] = []

    def redis_server(self, password: str | None = None) -> RedisServer:
        """Start a private redis-server (append-only file on; password if given)."""
        server = RedisServer(self.root / f"redis{len(self.servers)}", password)
        self.servers.append(server)
        server.start()
        return server

    def service(self, url: str) -> Service:
        """A service namespace on `url` whose processes are stopped at the end of the test."""
        svc = make_service(url, self.root / f"service{len(self.services)}", self.variants_dir)
        self.services.append(svc)
        return svc

    def close(self) -> None:
        """Stop every service's processes, then every server."""
        for svc in self.services:
            svc.stop_all()
        for server in self.servers:
            server.stop()


@pytest.fixture
def private(tmp_path: Path, variants_dir: Path) -> Iterator[PrivateServices]:
    """Private redis-servers (for restart and password tests) and services bound to them."""
    services = PrivateServices(tmp_path, variants_dir)
    try:
        yield services
    finally:
        services.close()


@dataclass
class Up:
    """`dynaquant up` itself, run as a user runs it, on a claimed Redis DB, a fresh queue and free ports."""

    env: dict[str, str]
    logs: Path
    redis_url: str
    queue: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self, *args: str, preexec_fn: Callable[[], None] | None = None, workers: int = 1) -> None:
        """Run `dynaquant up --workers N --no-flower ARGS...` and wait until the API and every worker answer."""
        argv = [sys.executable, "-m", "dynaquant.cli", "up", "--port", str(self.port), "--workers", str(workers)]
        argv += list(args) if "--flower-port" in args else ["--no-flower", *args]
        log = open(self.logs / "up.log", "ab")  # noqa: SIM115 - kept open for the process's lifetime
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec_fn
        )  # fmt: skip
        wait_until(lambda: self.answers("/healthz"), 60, "the web app under dynaquant up")
        wait_until(lambda: len(self.workers()) == workers, 120, f"{workers} workers' heartbeats")

    def answers(self, path: str) -> bool:
        try:
            return requests.get(self.url(path), timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def workers(self) -> dict[str, dict[str, Any]]:
        """Live workers' heartbeats by node name."""
        found = {}
        for key in self.redis.scan_iter("dq:worker:*"):
            raw = self.redis.get(key)
            if raw:
                state = json.loads(raw)
                found[state["worker"]] = state
        return found

    def processes(self) -> dict[str, dict[str, Any]]:
        """The supervisor's view of its processes (published in Redis), by name."""
        for key in self.redis.scan_iter("dq:supervisor:*"):
            raw = self.redis.get(key)
            if raw:
                return {p["name"]: p for p in json.loads(raw)["processes"]}
        return {}

    def node(self, name: str) -> str:
        """A worker child's Celery node name."""
        return f"{name}@{socket.gethostname()}"

    def job(self, job_id: str) -> dict[str, Any]:
        response = requests.get(self.url(f"/api/v1/jobs/{job_id}"), timeout=5)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def submit(self, **job: Any) -> str:
        body = {"grade_level": 6, "subject": "Science", **job}
        response = requests.post(self.url("/api/v1/jobs"), json=body, timeout=10)
        assert response.status_code == 202, response.text
        return str(response.json()["job_id"])

    def wait_job(self, job_id: str, timeout: float = 120) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            body = self.job(job_id)
            return body if body["status"] in ("succeeded", "failed", "cancelled") else None

        return dict(wait_until(done, timeout, f"job {job_id} to finish", interval=0.2))

    def log(self) -> str:
        return (self.logs / "up.log").read_text(errors="replace")

    def stop(self, timeout: float = 90) -> int | None:
        """SIGTERM `dynaquant up` (as Ctrl-C would) and wait; kill what is left if it hangs."""
        if self.proc is None:
            return None
        leftovers = [p["pid"] for p in self.processes().values() if p.get("pid")]
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        return self.proc.returncode


@pytest.fixture
def up(tmp_path: Path, variants_dir: Path) -> Iterator[Up]:
    """`dynaquant up` with default settings (but no idle calibration, shadow runs or prior) on its own Redis DB and
    queue; stopped (SIGTERM) afterwards."""
    url = claim_redis_db()
    queue = f"e2e-{uuid.uuid4().hex[:8]}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DYNAQUANT_", "QUANTIZE_", "FLOWER_"))},
        "REDIS_URL": url,
        "DYNAQUANT_QUEUE": queue,
        "DYNAQUANT_VARIANTS_DIR": str(variants_dir),
        "DYNAQUANT_DEFAULT_MODEL": SMALL_MODEL,  # the small model: these tests are about processes, not texts
        "DYNAQUANT_CALIBRATE": "0",  # the recovery tests count loads and deaths: no idle work beside their jobs
        "DYNAQUANT_SHADOW_SHARE": "0",
        "DYNAQUANT_PRIOR": "0",  # they die loading fp16, which the prior never picks for the small model's file
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    service = Up(env=env, logs=tmp_path, redis_url=url, queue=queue)
    try:
        yield service
    finally:
        service.stop()
        redis.Redis.from_url(url).flushdb()
