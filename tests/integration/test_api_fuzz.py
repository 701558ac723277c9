"""Hostile input: schemathesis fires over 1,000 generated requests at a live server (gunicorn, real Redis).

Every check schemathesis has runs (no 5xx, responses and headers match /openapi.json, schema-invalid
input is refused, ...) except two that do not fit this API, each said below. /readyz is left out of the
fuzzing because with no worker it answers 503 by design; a test here checks that answer instead.
Set DYNAQUANT_FUZZ_SEED to try another seed and DYNAQUANT_FUZZ_EXAMPLES for more cases per operation.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests

from tests.conftest import emptied, redis_db_url
from worker.jobs import COUNTS_KEY, JOB_KEY
from worker.probes import queue_depth

ROOT = Path(__file__).resolve().parents[2]
FUZZ_REDIS_URL = redis_db_url(14)
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
EXCLUDED_CHECKS = [
    # DELETE /jobs/{id} cancels: the job stays readable with status "cancelled", it is not deleted.
    "use_after_free",
]
EXCLUDED_PATHS = ["/readyz"]
# Statuses that count as refusing schema-invalid input; 414 comes from gunicorn (request line over 4094 bytes).
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "404", "405", "409", "413", "414", "415", "429"]
"""


@dataclass
class Server:
    """A running gunicorn serving the web app."""

    url: str
    log: Path
    redis: redis.Redis


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(tmp_path: Path, **env: str) -> Iterator[Server]:
    """Start gunicorn on a free port against Redis DB 14 (emptied first); stop it afterwards."""
    client = emptied(FUZZ_REDIS_URL)
    port = free_port()
    log = tmp_path / "gunicorn.log"
    environ = {**os.environ, "REDIS_URL": FUZZ_REDIS_URL, "PYTHONPATH": str(ROOT), **env}
    if "API_TOKEN" not in env:
        environ.pop("API_TOKEN", None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", "2", "--threads", "4", "--bind", f"127.0.0.1:{port}",
             "--timeout", "60", "webapp.wsgi:app"],
            cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield Server(url, log, client)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        client.flushdb()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """The app with no token."""
    yield from start_server(tmp_path)


@pytest.fixture
def guarded_server(tmp_path: Path) -> Iterator[Server]:
    """The app with API_TOKEN set."""
    yield from start_server(tmp_path, API_TOKEN="fuzz-token")


def schemathesis_run(server: Server, tmp_path: Path, examples: int, *extra: str) -> tuple[int, str]:
    """Run the schemathesis CLI against the server; returns the generated case count and the output."""
    seed = os.environ.get("DYNAQUANT_FUZZ_SEED", "20260101")
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(SCHEMATHESIS), "--config-file", str(config), "run", f"{server.url}/openapi.json",
        "--checks", "all", "--exclude-checks", ",".join(EXCLUDED_CHECKS),
        *[arg for path in EXCLUDED_PATHS for arg in ("--exclude-path", path)],
        "--max-examples", str(examples), "--seed", seed, "--generation-database", "none",
        "--request-timeout", "20", "--no-color", *extra,
    ]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-20000:]
    match = re.search(r"(\d+) generated, (\d+) passed", output)
    assert match, output[-5000:]
    assert match.group(1) == match.group(2), output[-5000:]
    server_log = server.log.read_text(errors="replace")
    assert "Traceback" not in server_log and "[ERROR]" not in server_log, server_log[-5000:]
    return int(match.group(1)), output


def assert_nothing_lost(client: redis.Redis) -> None:
    """Every job the fuzzing got accepted has its record and its message on the queue; nothing else does."""
    submitted = int(client.hget(COUNTS_KEY, "submitted") or 0)
    records = len(client.keys(JOB_KEY.format("*")))
    assert submitted == records == queue_depth(client, ["simplify"])


def test_fuzz_finds_no_server_error_and_no_schema_violation(server: Server, tmp_path: Path) -> None:
    examples = int(os.environ.get("DYNAQUANT_FUZZ_EXAMPLES", "200"))
    cases, output = schemathesis_run(server, tmp_path, examples)
    print(output[-1500:])
    assert cases >= 1000, output[-5000:]
    assert_nothing_lost(server.redis)
    ready = requests.get(f"{server.url}/readyz", timeout=5)
    assert ready.status_code == 503 and ready.json()["error"]["code"] == "not_ready"


def test_fuzz_with_a_token_refuses_unauthenticated_writes(guarded_server: Server, tmp_path: Path) -> None:
    cases, output = schemathesis_run(guarded_server, tmp_path, 25, "--header", "Authorization: Bearer fuzz-token")
    print(output[-1500:])
    assert cases >= 100, output[-5000:]
    assert_nothing_lost(guarded_server.redis)
    refused = requests.post(f"{guarded_server.url}/api/v1/jobs", json={"text": "a", "grade_level": 1}, timeout=5)
    assert refused.status_code == 401
