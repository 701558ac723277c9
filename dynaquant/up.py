"""`dynaquant up`: run Redis (when none answers), workers, the web app and Flower in the foreground, supervised.

A process that exits is restarted while the others keep serving (dynaquant/supervisor.py). When a worker
exits, its running job is requeued at once (worker/recovery.py) and its heartbeat withdrawn; every few
seconds the supervisor also sweeps for jobs of workers that died elsewhere and publishes the state of its
processes to Redis (worker/service_state.py), where /readyz, the status API and the dashboard read it.
Workers started together share the host's cores: each gets its share as DYNAQUANT_THREADS (unless that is
set), so that together they run one llama.cpp thread per core; more workers than cores are capped to one per
core (with a warning), unless DYNAQUANT_THREADS is set. Pinning each worker to its own cores as
well (sched_setaffinity) measured no better on a shared 2-core machine (73 and 48 against 75 jobs/min, 16
int4 jobs on 2 workers) and leaves a pinned worker stuck behind any other busy process on its core.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import redis

from dynaquant.supervisor import Child, Supervisor
from worker import recovery, service_state, status
from worker.contracts import SupervisorState
from worker.settings import Settings, available_cores, get_settings

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
FLOWER_ADDRESS = "127.0.0.1"


def redis_answers(url: str) -> bool:
    """Whether a Redis server answers PING at the URL."""
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def redis_server_argv(url: str, data_dir: Path) -> list[str]:
    """Command line for a local redis-server that serves the URL, keeping its data in data_dir."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit(
            f"no Redis answers at {url} and redis-server is not installed: "
            "install it (Debian: apt-get install redis-server) or set REDIS_URL to a running server"
        )
    parsed = urlparse(url)
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [binary, "--bind", parsed.hostname or "127.0.0.1", "--port", str(parsed.port or 6379)]
    argv += ["--dir", str(data_dir), "--appendonly", "yes", "--save", ""]
    if parsed.password:
        argv += ["--requirepass", parsed.password]
    return argv


def wait_for_redis(url: str, seconds: float = 15.0) -> None:
    """Block until Redis answers, or fail with a message that says where to look."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if redis_answers(url):
            return
        time.sleep(0.2)
    raise SystemExit(f"Redis did not answer at {url} within {seconds:.0f} s; see its log above")


def worker_argv(index: int, loglevel: str) -> list[str]:
    """Command line for one Celery worker process running one job at a time."""
    queue = get_settings().queue
    return [
        sys.executable, "-m", "celery", "-A", "worker.tasks", "worker",
        "--pool", "solo", "-Q", queue, "-n", f"worker{index}@%h", "--loglevel", loglevel, "-E",
    ]  # fmt: skip


def web_argv(host: str, port: int, threads: int) -> list[str]:
    """Command line for the web app under gunicorn."""
    return [
        sys.executable, "-m", "gunicorn", "webapp.wsgi:app", "--bind", f"{host}:{port}",
        "--workers", "1", "--threads", str(threads), "--timeout", "60", "--access-logfile", "-",
    ]  # fmt: skip


def flower_argv(port: int, address: str = FLOWER_ADDRESS, basic_auth: str | None = None) -> list[str]:
    """Command line for Flower watching the same broker (behind basic auth when FLOWER_BASIC_AUTH is set)."""
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.celery_app",
        "flower",
        f"--port={port}",
        f"--address={address}",
    ]
    return argv + ([f"--basic-auth={basic_auth}"] if basic_auth else [])


def flower_env(address: str = FLOWER_ADDRESS, basic_auth: str | None = None) -> dict[str, str]:
    """Flower's environment: its API opened without auth only on a loopback address with no basic auth set.

    Flower refuses its API (/api/...) unless FLOWER_UNAUTHENTICATED_API is set or auth is configured.
    """
    env = dict(os.environ)
    if basic_auth:
        env.pop("FLOWER_UNAUTHENTICATED_API", None)
    elif ipaddress.ip_address(socket.gethostbyname(address)).is_loopback:
        env["FLOWER_UNAUTHENTICATED_API"] = "true"
    else:
        raise SystemExit(f"Flower on {address} (not loopback) needs FLOWER_BASIC_AUTH=user:password for its API")
    return env


WORKER_HINT = (
    "check its log above: is Redis reachable at REDIS_URL, are the model files readable "
    "(DYNAQUANT_MODELS_FILE, DYNAQUANT_VARIANTS_DIR), is there memory for the model? The service goes on "
    "with the other workers"
)


def worker_count(requested: int, settings: Settings) -> tuple[int, str | None]:
    """How many workers to start, and why fewer than asked: with more workers than cores (DYNAQUANT_THREADS unset)
    each would run one thread and they would only take turns on the cores, which measured slower than one worker
    per core (bench.workers, 2 cores: 4 workers 0.94x one worker, 2 workers 1.19x). DYNAQUANT_THREADS set: as asked."""
    cores = available_cores()
    if settings.threads or requested <= cores:
        return requested, None
    return cores, (
        f"--workers {requested} on {cores} cores: starting {cores} (one per core); more workers than cores only take "
        f"turns on them and finish fewer jobs. Set DYNAQUANT_THREADS to start {requested} anyway"
    )


def worker_children(workers: int, loglevel: str, settings: Settings) -> list[Child]:
    """The worker processes, each running as many llama.cpp threads as its share of the cores (or DYNAQUANT_THREADS)."""
    children = []
    for i, threads in enumerate(settings.worker_threads(workers), start=1):
        env = {**os.environ, "DYNAQUANT_THREADS": str(threads)}
        children.append(Child(f"worker{i}", "worker", worker_argv(i, loglevel), env, WORKER_HINT, threads=threads))
    return children


def worker_node(child: Child) -> str:
    """The Celery node name a worker child runs under (`-n worker1@%h`)."""
    return f"{child.name}@{socket.gethostname()}"


class Service:
    """The supervised service's link to Redis: requeue a dead worker's job, sweep, publish the processes' state."""

    def __init__(self, url: str, supervisor: Supervisor, web_url: str, settings: Settings) -> None:
        self.client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self.supervisor = supervisor
        self.settings = settings
        self.sweeper = recovery.Sweeper(self.client, settings)
        self.ident = f"{socket.gethostname()}:{os.getpid()}"
        self.web_url = web_url
        self.started_at = time.time()

    def on_exit(self, child: Child) -> None:
        """A worker exited: requeue the job it was running now, and drop it from the status."""
        if child.role != "worker":
            return
        node = worker_node(child)
        try:
            requeued = self.sweeper.sweep(dead=[node])
            status.withdraw(self.client, node)
        except redis.RedisError as exc:
            print(f"could not requeue the jobs of {node} yet ({exc}); the sweep retries", file=sys.stderr)
            return
        for job_id in requeued:
            print(f"job {job_id} of {node} requeued", file=sys.stderr, flush=True)

    def tick(self) -> None:
        """Sweep for jobs of workers that died anywhere, and publish the processes' state."""
        try:
            self.sweeper.sweep()
            state = SupervisorState(
                host=socket.gethostname(),
                pid=os.getpid(),
                started_at=self.started_at,
                url=self.web_url,
                processes=self.supervisor.snapshot(),
            )
            service_state.publish(self.client, self.ident, state, self.settings.heartbeat_ttl)
        except redis.RedisError as exc:
            print(f"could not reach Redis to publish the service state: {exc}", file=sys.stderr)

    def close(self) -> None:
        """Withdraw the published state."""
        with contextlib.suppress(redis.RedisError):
            service_state.withdraw(self.client, self.ident)


def run_up(host: str, port: int, workers: int, flower_port: int | None, data_dir: Path, loglevel: str = "INFO") -> int:
    """Start the whole service and supervise it until Ctrl-C or SIGTERM."""
    url = os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    settings = get_settings()
    supervisor = Supervisor(tick_seconds=settings.heartbeat_seconds)
    service: Service | None = None
    try:
        if not redis_answers(url):
            redis_hint = f"check its log above (is the port of {url} free, is {data_dir / 'redis'} writable?)"
            argv = redis_server_argv(url, data_dir / "redis")
            supervisor.add(Child("redis", "redis", argv, None, redis_hint, essential=True, last_stage=True))
            wait_for_redis(url)
        service = Service(url, supervisor, f"http://{host}:{port}", settings)
        supervisor.on_exit, supervisor.on_tick = service.on_exit, service.tick
        count, capped = worker_count(workers, settings)
        if capped:
            print(capped, file=sys.stderr, flush=True)
        for child in worker_children(count, loglevel, settings):
            supervisor.add(child)
        web_hint = f"check its log above (is port {port} free?); without the web app there is no API"
        supervisor.add(Child("web", "web", web_argv(host, port, threads=8), None, web_hint, essential=True))
        if flower_port is not None:
            auth = settings.flower_basic_auth
            flower_hint = f"check its log above (is port {flower_port} free?); the API runs without Flower"
            argv, env = flower_argv(flower_port, basic_auth=auth), flower_env(basic_auth=auth)
            supervisor.add(Child("flower", "flower", argv, env, flower_hint))
        print(f"dynaquant is up: http://{host}:{port}/ (API under /api/v1); Ctrl-C stops it", flush=True)
        return supervisor.wait()
    finally:
        supervisor.stop_all()
        if service is not None:
            service.close()
