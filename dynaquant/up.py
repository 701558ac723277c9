"""`dynaquant up`: run Redis (when none answers), workers, the web app and Flower in the foreground."""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import redis

from worker.settings import get_settings

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
FLOWER_ADDRESS = "127.0.0.1"


@dataclass
class Supervisor:
    """Child processes started together and stopped together."""

    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        """Start a child process in its own process group."""
        print(f"starting {name}: {' '.join(argv)}", flush=True)
        proc = subprocess.Popen(argv, env=env, start_new_session=True)
        self.children.append((name, proc))

    def wait(self) -> int:
        """Block until a child exits or a stop signal arrives; return the exit code to use."""
        stop = {"signal": 0}

        def on_signal(signum: int, _frame: object) -> None:
            stop["signal"] = signum

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        while not stop["signal"]:
            for name, proc in self.children:
                if proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; stopping the rest", file=sys.stderr)
                    return proc.returncode or 1
            time.sleep(0.5)
        return 0

    def stop_all(self, grace_seconds: float = 20.0) -> None:
        """SIGTERM every child, then SIGKILL those still running after the grace period."""
        for _, proc in reversed(self.children):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        for name, proc in reversed(self.children):
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in {grace_seconds:.0f} s; killing it", file=sys.stderr)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


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


def run_up(host: str, port: int, workers: int, flower_port: int | None, data_dir: Path, loglevel: str = "INFO") -> int:
    """Start the whole service and supervise it until Ctrl-C or SIGTERM."""
    url = os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    supervisor = Supervisor()
    try:
        if not redis_answers(url):
            supervisor.spawn("redis", redis_server_argv(url, data_dir / "redis"))
            wait_for_redis(url)
        for i in range(1, workers + 1):
            supervisor.spawn(f"worker{i}", worker_argv(i, loglevel))
        supervisor.spawn("web", web_argv(host, port, threads=8))
        if flower_port is not None:
            auth = get_settings().flower_basic_auth
            supervisor.spawn("flower", flower_argv(flower_port, basic_auth=auth), flower_env(basic_auth=auth))
        print(f"dynaquant is up: http://{host}:{port}/ (API under /api/v1); Ctrl-C stops it", flush=True)
        return supervisor.wait()
    finally:
        supervisor.stop_all()
