"""Workers on one host share its cores: the same int4 batch under `dynaquant up --workers 1`, `2` and `4`.

    .venv/bin/python -m bench.workers [--jobs 24] [--workers 1,2,4] [--quick]

For each worker count, the real `dynaquant up` command (no Flower) starts on its own Redis DB (claimed from
bench.service's DBs on the REDIS_URL server), its own queue, a DYNAQUANT_HOME under /tmp and a free port, with
DYNAQUANT_THREADS unset, so `up` gives each worker its share of the cores as it does for a user. Once every
worker's heartbeat is in, one warm-up job per worker loads the model, then --jobs paragraphs go as ONE batch
(force int4, quality_check false: the same work in every run). Jobs/min = jobs over first submission to last
finish. Printed: jobs/min per worker count, the ratio to 1 worker (target: >= 0.95 for every count), the
workers `up` started (it caps more workers than cores to one per core) and the threads each reports in its
status. Writes bench/results/workers.json.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from bench.common import (
    QUALITY_MAX_TOKENS,
    RESULTS,
    VARIANTS,
    bench_parser,
    ensure_variants,
    start_run,
    table,
    wait_for_idle_cpu,
)
from bench.overhead import job_body
from bench.paragraphs import PARAGRAPHS
from bench.service import Service, claim_redis_db
from dynaquant.up import worker_count
from tests.processes import answers, free_port, wait_until
from worker.settings import Settings

TARGET = 0.95
QUICK_JOBS = 8


def up_argv(port: int, workers: int) -> list[str]:
    """`dynaquant up` as a user runs it (the venv's console script), without Flower."""
    script = Path(sys.executable).parent / "dynaquant"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "dynaquant.cli"]
    return [*command, "up", "--port", str(port), "--workers", str(workers), "--no-flower", "--loglevel", "WARNING"]


def run_up(workers: int, jobs: int, level: str) -> dict[str, Any]:
    """Start `dynaquant up --workers N`, warm every worker, run the batch, stop it; the run's figures."""
    url = claim_redis_db()
    home = Path(tempfile.mkdtemp(prefix=f"dq-workers-{workers}-", dir="/tmp"))
    port = free_port()
    queue = f"bench-workers-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if k not in ("API_TOKEN", "DYNAQUANT_THREADS")}
    env.update(REDIS_URL=url, DYNAQUANT_HOME=str(home), DYNAQUANT_QUEUE=queue, DYNAQUANT_VARIANTS_DIR=str(VARIANTS),
               HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")  # fmt: skip
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    svc = Service(redis_url=url, queue=queue, env=env, logs=logs, base_url=f"http://127.0.0.1:{port}")
    client = redis.Redis.from_url(url)
    with open(logs / f"workers-{workers}.log", "ab") as log:
        proc = subprocess.Popen(up_argv(port, workers), env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        try:
            wait_until(lambda: answers(svc.url("/healthz")), 120, "the web app of dynaquant up")
            started, capped = worker_count(workers, Settings(threads=None))
            wait_until(lambda: len(client.keys("dq:worker:*")) >= started, 180, f"{started} worker heartbeats")
            warm = [svc.submit(job_body(PARAGRAPHS[-1 - i], level, quality_check=False)) for i in range(started)]
            svc.wait_jobs(warm, timeout=300)
            threads = sorted(
                (w["worker"], w.get("threads")) for w in svc.status().get("workers", []) if isinstance(w, dict)
            )
            paragraphs = [PARAGRAPHS[i % len(PARAGRAPHS)] for i in range(jobs)]
            _, ids = svc.submit_batch([job_body(p, level, quality_check=False) for p in paragraphs])
            records = svc.wait_jobs(ids, timeout=120 + 30 * jobs)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            client.flushdb()
    done = [r for r in records.values() if r.get("status") == "succeeded"]
    span = max(float(r["finished_at"]) for r in done) - min(float(r["created_at"]) for r in records.values())
    per_worker: dict[str, int] = {}
    for r in done:
        per_worker[str(r.get("worker"))] = per_worker.get(str(r.get("worker")), 0) + 1
    return {
        "workers": workers,
        "started": started,
        "capped": capped,
        "jobs": jobs,
        "succeeded": len(done),
        "span_s": span,
        "jobs_per_min": 60 * len(done) / span if span > 0 else None,
        "threads": dict(threads),
        "jobs_per_worker": per_worker,
        "mean_generation_s": sum(float(r["result"]["generation_seconds"]) for r in done) / max(len(done), 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the batch under 1, 2 and 4 workers and print jobs/min and the ratio to one worker."""
    parser = bench_parser(__doc__)
    parser.add_argument("--jobs", type=int, default=24, help="paragraphs in the batch (default 24)")
    parser.add_argument("--workers", default="1,2,4", help="worker counts to run (default 1,2,4)")
    parser.add_argument("--level", default="int4", help="the forced level (default int4)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_JOBS} jobs per run (noisy)")
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.workers.split(",") if x.strip()]
    jobs = QUICK_JOBS if args.quick else args.jobs
    ensure_variants((args.level,))
    rec = start_run("workers", args, argv)
    rec.data.update(jobs=jobs, level=args.level, max_tokens=QUALITY_MAX_TOKENS, cores=os.cpu_count(), quick=args.quick)
    runs: dict[str, dict[str, Any]] = {}
    for n in counts:
        busy = wait_for_idle_cpu(args.wait_idle)
        print(f"dynaquant up --workers {n}: {jobs} jobs at {args.level}", flush=True)
        started = time.perf_counter()
        runs[str(n)] = run_up(n, jobs, args.level)
        runs[str(n)]["cpu_busy_before_percent"] = busy
        print(f"  {runs[str(n)]['jobs_per_min']:.1f} jobs/min ({time.perf_counter() - started:.0f} s)", flush=True)
        rec.data["runs"] = runs
        rec.save(final=False)
    base = runs.get("1", {}).get("jobs_per_min")
    for r in runs.values():
        r["ratio_to_one"] = r["jobs_per_min"] / base if base and r["jobs_per_min"] else None
    rows = [
        [f"--workers {n}", r.get("started", n), ", ".join(str(t) for t in r["threads"].values()),
         f"{r['succeeded']}/{r['jobs']}",
         r["jobs_per_min"], r["ratio_to_one"], r["mean_generation_s"],
         None if r["ratio_to_one"] is None else ("yes" if r["ratio_to_one"] >= TARGET else "no")]
        for n, r in runs.items()
    ]  # fmt: skip
    headers = ["dynaquant up", "workers started", "threads per worker", "done", "jobs/min", "x 1 worker",
               "generation s/job", ">= 0.95"]  # fmt: skip
    print(f"\n{jobs} jobs at {args.level}, one batch, {os.cpu_count()} cores\n" + table(headers, rows))
    rec.save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
