"""Recovery under `dynaquant up` itself: killed workers, a killed web app, an OOM kill, a flood, a process that
cannot start. Every test runs the real command with default settings (heartbeat, visibility timeout, threads)
on its own Redis DB and free ports, and kills real processes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import Up, wait_until
from worker.jobs import COUNTS_KEY, JOB_KEY
from worker.policy import LEVELS
from worker.queues import queue_depth
from worker.registry import bundled_gguf_path
from worker.settings import SMALL_MODEL
from worker.variants import ensure_variant

pytestmark = [pytest.mark.e2e, pytest.mark.model]

PLATES = (
    "Plate tectonics is the scientific theory that Earth's lithosphere comprises a number of large tectonic "
    "plates, which have been slowly moving since about 3.4 billion years ago. "
)
BUSY = {"text": (PLATES * 4)[:700], "max_tokens": 24, "task_priority": "quality"}
"""fp16 for a few seconds, quality-gated: one part of at most DYNAQUANT_PART_MAX_CHARS, so one draft and its retries."""
SHORT = {"text": PLATES, "max_tokens": 2, "force_quantization": "int2", "quality_check": False}  # one draft each


class Watch:
    """Polls the API every 0.1 s in the background and keeps every failure to answer."""

    def __init__(self, up: Up, paths: list[str]) -> None:
        self.up, self.paths = up, paths
        self.failures: list[str] = []
        self.answers = 0
        self.running = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        session = requests.Session()
        while self.running.is_set():
            for path in self.paths:
                try:
                    response = session.get(self.up.url(path), timeout=5)
                    if response.status_code >= 500 and path != "/readyz":  # readyz says 503 while no worker is up
                        self.failures.append(f"{path}: {response.status_code} {response.text[:200]}")
                    self.answers += 1
                except requests.RequestException as exc:
                    self.failures.append(f"{path}: {exc}")
            time.sleep(0.1)

    def __enter__(self) -> Watch:
        self.running.set()
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.running.clear()
        self.thread.join()


def wait_phase(up: Up, job_id: str, phase: str) -> dict[str, Any]:
    """Poll until the job runs and its worker says it is in `phase` (loading / running) of its first attempt."""

    def reached() -> dict[str, Any] | None:
        job = up.job(job_id)
        assert job["status"] in ("queued", "running"), job
        stage = job.get("stage") or {}
        return job if job["status"] == "running" and stage.get("phase") == phase else None

    return dict(wait_until(reached, 120, f"job {job_id} to be {phase}", interval=0.03))


def kill_worker_of(up: Up, job: dict[str, Any]) -> tuple[int, float]:
    """SIGKILL the worker process running the job (its pid from its heartbeat); returns the pid and the time."""
    pid = int(up.workers()[job["worker"]]["pid"])
    os.kill(pid, signal.SIGKILL)
    return pid, time.time()


def stored(up: Up) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in up.redis.hgetall(COUNTS_KEY).items()}


def check_recovered(up: Up, job_id: str, killed_at: float, killed: dict[str, Any], phase: str) -> dict[str, Any]:
    """The job came back once, ran a level lower, succeeded within 60 s of the kill and was stored once."""
    final = up.wait_job(job_id, timeout=90)
    assert final["status"] == "succeeded", final
    assert final["finished_at"] - killed_at < 60, final
    assert final["attempts"] == 2 and final["result"]["attempt"] == 2, final
    [event] = final["history"]
    assert event["event"] == "requeued" and event["reason"] == "worker lost" and event["worker"] == killed["worker"]
    assert event["phase"] == phase and event["level"] == killed["stage"]["level"], event
    assert event["at"] - killed_at < 15, f"requeued {event['at'] - killed_at:.1f} s after the kill"
    lost_level = event["level"]
    assert final["result"]["level"] != lost_level and final["result"]["ceiling"]["level"] == event["ceiling"], final
    assert any(lost_level in reason for reason in final["result"]["ceiling"]["reasons"]), final["result"]["ceiling"]
    ceiling = LEVELS.index(event["ceiling"])
    assert all(LEVELS.index(a["level"]) >= ceiling for a in final["result"]["attempts"]), "a draft went above it"
    assert stored(up).get("succeeded") == 1 and stored(up).get("failed", 0) == 0
    wait_until(lambda: queue_depth(up.redis, [up.queue]) == 0 and up.redis.hlen("unacked") == 0, 30, "an empty queue")
    return final


def test_one_worker_sigkilled_mid_job_is_restarted_and_its_job_succeeds_once(up: Up) -> None:
    up.start(workers=1)
    job_id = up.submit(**BUSY)
    with Watch(up, [f"/api/v1/jobs/{job_id}", "/api/v1/quantization/status", "/readyz"]) as watch:
        running = wait_phase(up, job_id, "running")
        pid, killed_at = kill_worker_of(up, running)
        final = check_recovered(up, job_id, killed_at, running, "running")
        back = wait_until(lambda: up.workers().get(up.node("worker1")), 30, "worker1 back")
    assert back["pid"] != pid and final["worker"] == up.node("worker1")
    assert not watch.failures and watch.answers > 20, watch.failures[:5]
    assert up.processes()["worker1"]["restarts"] == 1
    requeued = final["history"][0]["at"] - killed_at
    print(
        f"\n[up, 1 worker] SIGKILL pid {pid} mid-job ({running['stage']['level']}): requeued after {requeued:.1f} s, "
        f"rerun started {final['started_at'] - killed_at:.1f} s and succeeded {final['finished_at'] - killed_at:.1f} s "
        f"after the kill at {final['result']['level']} ({len(final['result']['attempts'])} drafts); "
        f"{watch.answers} API answers, none failed"
    )


def test_two_workers_the_other_one_takes_the_killed_workers_job(up: Up) -> None:
    up.start(workers=2)
    job_id = up.submit(**BUSY)
    with Watch(up, [f"/api/v1/jobs/{job_id}", "/api/v1/quantization/status"]) as watch:
        running = wait_phase(up, job_id, "running")
        _, killed_at = kill_worker_of(up, running)
        final = check_recovered(up, job_id, killed_at, running, "running")
    assert final["worker"] != running["worker"], "the surviving worker took the job"
    assert not watch.failures, watch.failures[:5]
    wait_until(lambda: len(up.workers()) == 2, 30, "the killed worker back")
    threads = {name: state["threads"] for name, state in up.workers().items()}
    assert sum(threads.values()) == max(len(os.sched_getaffinity(0)), 2), "one llama.cpp thread per core in all"
    print(
        f"\n[up, 2 workers] killed {running['worker']}; {final['worker']} ran the job at {final['result']['level']}: "
        f"requeued {final['history'][0]['at'] - killed_at:.1f} s, succeeded {final['finished_at'] - killed_at:.1f} s "
        f"after the kill ({len(final['result']['attempts'])} drafts); threads per worker {threads}"
    )


def test_a_worker_killed_while_loading_a_model(up: Up, tmp_path: Path) -> None:
    up.env["DYNAQUANT_VARIANTS_DIR"] = str(tmp_path / "fresh-variants")  # the rerun's lower level is built for it
    up.start(workers=1)
    job_id = up.submit(**BUSY)
    loading = wait_phase(up, job_id, "loading")
    pid, killed_at = kill_worker_of(up, loading)
    final = check_recovered(up, job_id, killed_at, loading, "loading")
    print(
        f"\n[up, loading] killed pid {pid} while loading {loading['stage']['level']}; rerun at "
        f"{final['result']['level']} succeeded {final['finished_at'] - killed_at:.1f} s after the kill "
        f"({len(final['result']['attempts'])} drafts)"
    )


def test_the_web_app_killed_is_restarted_and_no_accepted_job_is_lost(up: Up) -> None:
    up.start(workers=1)
    accepted = [up.submit(**SHORT, grade_level=3 + i) for i in range(6)]
    web = up.processes()["web"]
    os.killpg(int(web["pid"]), signal.SIGKILL)
    killed_at = time.monotonic()
    wait_until(lambda: up.processes().get("web", {}).get("restarts") == 1, 30, "the web app restarted")
    wait_until(lambda: up.answers("/healthz"), 30, "the API back")
    back = time.monotonic() - killed_at
    later = up.submit(**SHORT)
    jobs = [up.wait_job(job_id, timeout=90) for job_id in [*accepted, later]]
    assert all(job["status"] == "succeeded" and job["attempts"] == 1 for job in jobs), jobs
    assert stored(up)["succeeded"] == len(jobs)
    assert up.workers(), "the worker kept running"
    assert up.stop() == 0, "SIGTERM stops `dynaquant up` cleanly"
    log = up.log()
    assert "Warm shutdown" in log and "Shutting down: Master" in log, log[-2000:]
    assert not up.redis.keys("dq:supervisor:*") and not up.workers(), "the state is withdrawn"
    print(f"\n[up, web killed] API back {back:.1f} s after SIGKILL; {len(jobs)} jobs accepted around it, all succeeded")


def test_a_process_that_cannot_start_is_given_up_and_the_service_says_so(up: Up) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        up.start("--flower-port", str(port), workers=1)
        wait_until(lambda: up.processes().get("flower", {}).get("state") == "given_up", 120, "flower given up")
        ready = requests.get(up.url("/readyz"), timeout=5)
        status = requests.get(up.url("/api/v1/quantization/status"), timeout=5).json()
    assert ready.status_code == 200 and ready.json()["status"] == "degraded", ready.text
    message = ready.json()["checks"]["processes"]["message"]
    assert "flower gave up after 5 failed starts" in message and f"port {port}" in message, message
    assert status["service"]["degraded"] and status["service"]["messages"] == [message]
    argv = [sys.executable, "-m", "dynaquant.cli", "status", "--url", up.url("")]
    shown = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "degraded:" in shown.stdout and "flower gave up" in shown.stdout, shown.stdout
    assert up.wait_job(up.submit(**SHORT))["status"] == "succeeded", "the API and the worker go on without Flower"
    print(f"\n[up, give up] {message}")


def test_flood_of_2000_against_max_queue_60_accepts_exactly_60(up: Up) -> None:
    limit, total = 60, 2000
    up.env["DYNAQUANT_MAX_QUEUE"] = str(limit)
    up.start(workers=0)
    local = threading.local()

    def post(index: int) -> tuple[int, str | None]:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        body = {**SHORT, "grade_level": 3 + index % 8, "subject": "Science"}
        response = session.post(up.url("/api/v1/jobs"), json=body, timeout=60)
        return response.status_code, response.json().get("job_id") if response.status_code == 202 else None

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(post, range(total)))
    seconds = time.monotonic() - started
    codes = Counter(code for code, _ in answers)
    accepted = [job_id for code, job_id in answers if code == 202 and job_id]
    assert codes == {202: limit, 429: total - limit}, codes
    assert queue_depth(up.redis, [up.queue]) == limit

    worker = [sys.executable, "-m", "celery", "-A", "worker.tasks", "worker", "--pool", "solo", "-Q", up.queue]
    worker += ["-n", "drain@e2e", "--loglevel", "WARNING"]  # the README's command for a worker on another machine
    log = open(up.logs / "drain.log", "ab")  # noqa: SIM115 - kept open for the child's lifetime
    drain = subprocess.Popen(worker, env=up.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:

        def finished() -> bool:
            pipe = up.redis.pipeline(transaction=False)
            for job_id in accepted:
                pipe.hget(JOB_KEY.format(job_id), "status")
            return all(s == b"succeeded" for s in pipe.execute())

        wait_until(finished, 300, f"{limit} accepted jobs to succeed", interval=1)
    finally:
        drain.terminate()
        drain.wait(60)
    assert stored(up) == {"submitted": limit, "succeeded": limit}
    print(
        f"\n[flood] {total} POSTs in {seconds:.1f} s (32 client threads) against DYNAQUANT_MAX_QUEUE={limit}: "
        f"{codes[202]} accepted, {codes[429]} refused with 429; all {limit} succeeded once a worker started"
    )


MEMORY_CGROUP = Path("/sys/fs/cgroup/memory")


@contextmanager
def memory_cgroup(name: str) -> Iterator[Path]:
    """A cgroup v1 memory controller group; skipped where it cannot be made (not root, no v1 memory controller)."""
    path = MEMORY_CGROUP / name
    try:
        path.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create a memory cgroup here ({exc}): the OOM test needs root and cgroup v1 memory")
    try:
        yield path
    finally:
        for pid in (path / "cgroup.procs").read_text().split():
            os.kill(int(pid), signal.SIGKILL)
        wait_until(lambda: not (path / "cgroup.procs").read_text().strip(), 30, "the cgroup to empty")
        path.rmdir()


def test_a_worker_oom_killed_on_fp16_comes_back_and_the_job_runs_a_level_lower(up: Up, variants_dir: Path) -> None:
    sizes = {
        t: ensure_variant(bundled_gguf_path(SMALL_MODEL), t, variants_dir).path.stat().st_size for t in ("Q8_0", "F16")
    }
    up.env["DYNAQUANT_MMAP"] = "0"  # weights in the process's own memory, where the cgroup limit sees them
    with memory_cgroup(f"dynaquant-e2e-{os.getpid()}") as cgroup:
        procs = str(cgroup / "cgroup.procs")

        def join_cgroup() -> None:  # in the child before exec: `dynaquant up` and all it starts live in the cgroup
            Path(procs).write_text(str(os.getpid()))

        up.start(preexec_fn=join_cgroup, workers=1)
        idle = wait_until(lambda: _settled_rss(cgroup), 30, "memory use to settle")
        # A job adds its weights plus about 165 MB (llama.cpp's import, KV cache and buffers at n_ctx 4096, measured):
        # the limit sits halfway between what int8 and fp16 need, about 125 MB from each.
        limit = idle + 165 * 2**20 + (sizes["Q8_0"] + sizes["F16"]) // 2
        (cgroup / "memory.limit_in_bytes").write_text(str(limit))
        job_id = up.submit(**BUSY)  # quality at low load and comfortable memory: fp16, which does not fit
        final = up.wait_job(job_id, timeout=180)
        oom_kills = int(_memory_file(cgroup, "memory.oom_control")["oom_kill"])
        up.stop()
    assert oom_kills >= 1, "the kernel's OOM killer did not act"
    assert final["status"] == "succeeded", final
    [event] = final["history"]
    assert event["level"] == "fp16" and event["reason"] == "worker lost", event
    assert final["result"]["level"] == "int8" and final["result"]["ceiling"]["level"] == "int8", final["result"]
    mb = {name: value / 2**20 for name, value in {"limit": limit, "idle": idle, **sizes}.items()}
    print(
        f"\n[oom] cgroup limit {mb['limit']:.0f} MB (idle {mb['idle']:.0f} MB, Q8_0 {mb['Q8_0']:.0f} MB, F16 "
        f"{mb['F16']:.0f} MB): {oom_kills} OOM kill(s); the worker died {event['phase']} fp16; the job was requeued, "
        f"rerun at {final['result']['level']} ({[a['level'] for a in final['result']['attempts']]}), succeeded "
        f"{final['finished_at'] - event['at']:.1f} s after the requeue"
    )


def _memory_file(cgroup: Path, name: str) -> dict[str, str]:
    return dict(line.split() for line in (cgroup / name).read_text().splitlines())


def _settled_rss(cgroup: Path) -> int | None:
    """The cgroup's anonymous memory once it holds still (page cache is reclaimable and left out)."""
    first = int(_memory_file(cgroup, "memory.stat")["total_rss"])
    time.sleep(1)
    second = int(_memory_file(cgroup, "memory.stat")["total_rss"])
    return second if abs(second - first) < 8 * 2**20 else None
