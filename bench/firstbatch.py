"""What a user sees: `dynaquant up` on a fresh cache and a fresh Redis, batches over HTTP, against a plain loop.

    .venv/bin/python -m bench.firstbatch [--model qwen2.5-1.5b] [--jobs 16] [--burst 40] [--skip-dynamic]
                                         [--env DYNAQUANT_CALIBRATE=0 ...]

Every run is measured the way a user meets it, one after another (never two at once on the cores):

1. Plain loop: `llama_cpp.Llama` on the model's bundled Q4_K_M file with the worker's context and threads,
   `create_chat_completion` of the service's own chat turns (worker.prompts.build_messages; a base model
   without a chat template gets the service's few-shot completion), greedy, the service's default max_tokens.
   "first" counts from before the model load; "steady" is a second pass.
2. Fixed int4, first batch: a fresh XDG_CACHE_HOME (the bundled model assembled on first use, no variants
   built), a fresh redis-server on its own port, `dynaquant up --workers 1 --no-flower` with its defaults
   (calibration, shadow runs and pre-loads on), the texts as ONE batch (POST /api/v1/batches) with
   force_quantization int4 and quality_check false (the loop's work). Jobs/min = jobs over finished_at of the
   last job minus created_at of the first. Then the same batch again on the same service ("steady"), sent at
   once, while the worker's idle work (variant builds, calibration) would run.
3. Dynamic, burst of --burst texts on a fresh cache and Redis: the decision engine chooses (gate off, so the
   work is equal), against fixed int4's burst on the same texts, also fresh; then, once the host's calibration
   is done, the dynamic burst again; then fixed int4 once more, fresh. The dynamic runs are compared with the mean
   of the two fixed runs around them (the machine's speed drifts). Pass rate: the checker's verdict on each job's
   first draft.

Prints the tables and writes bench/results/firstbatch-<model>.json; each service's log stays in
bench/results/firstbatch-<model>/ (its caches are removed).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
import requests

from bench.paragraphs import ALL_PARAGRAPHS, Paragraph
from dynaquant.api import ServiceClient
from worker.calibration import DONE_PREFIX
from worker.prompts import STOP, build_messages, build_prompt
from worker.settings import DEFAULT_MODEL, Settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
THREADS = 2


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll check() until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException, OSError):
            found = check()
            if found:
                return found
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


@contextlib.contextmanager
def fresh_service(model: str, workdir: Path, extra_env: dict[str, str]) -> Iterator[tuple[ServiceClient, str]]:
    """A new redis-server and `dynaquant up` on an empty cache directory; both stopped afterwards."""
    redis_port, http_port = free_port(), free_port()
    cache = workdir / "cache"
    cache.mkdir(parents=True)
    redis_proc = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DYNAQUANT_", "QUANTIZE_", "REDIS_"))}
    env.update(
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        XDG_CACHE_HOME=str(cache),
        DYNAQUANT_DEFAULT_MODEL=model,
        DYNAQUANT_THREADS=str(THREADS),
        PYTHONUNBUFFERED="1",
        **extra_env,
    )
    log = open(workdir / "up.log", "ab")  # noqa: SIM115 - open for the service's lifetime
    argv = [sys.executable, "-m", "dynaquant.cli", "up", "--port", str(http_port), "--workers", "1", "--no-flower"]
    up = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    client = ServiceClient(f"http://127.0.0.1:{http_port}", timeout=60)
    try:
        wait_for(lambda: client.status().get("workers"), 180, "dynaquant up's worker")
        yield client, env["REDIS_URL"]
    finally:
        up.terminate()
        try:
            up.wait(90)
        except subprocess.TimeoutExpired:
            up.kill()
        redis_proc.terminate()
        redis_proc.wait()
        log.close()


def items_for(paragraphs: list[Paragraph], model: str, level: str | None) -> list[dict[str, Any]]:
    """One batch item per paragraph: the model, the gate off, and a fixed level or none (dynamic)."""
    items = []
    for p in paragraphs:
        item: dict[str, Any] = {
            "text": p.text,
            "grade_level": p.grade_level,
            "subject": p.subject,
            "model": model,
            "quality_check": False,
        }
        if level is not None:
            item["force_quantization"] = level
        items.append(item)
    return items


def run_batch(client: ServiceClient, items: list[dict[str, Any]], timeout: float = 3600) -> dict[str, Any]:
    """Send the items as one batch, wait for every job, and sum it up from the job records' server clocks."""
    answer = client.submit_batch(items)
    batch_id, job_ids = answer["batch_id"], answer["job_ids"]
    wait_for(lambda: client.batch(batch_id)["done"], timeout, f"batch {batch_id}", interval=1.0)
    jobs = [client.job(job_id) for job_id in job_ids]
    done = [j for j in jobs if j["status"] == "succeeded"]
    span = max(j["finished_at"] for j in jobs) - min(j["created_at"] for j in jobs)
    results = [j["result"] for j in done]
    ordered = sorted(done, key=lambda j: j["started_at"])
    in_worker = sum(j["finished_at"] - j["started_at"] for j in done)
    passes = [r["quality"]["verdict"] == "pass" for r in results if r.get("quality")]
    return {
        "jobs": len(jobs),
        "succeeded": len(done),
        "seconds": round(span, 2),
        "jobs_per_min": round(len(done) / span * 60, 2),
        "generation_s": round(sum(r["generation_seconds"] for r in results), 2),
        "load_s": round(sum(r["load_seconds"] for r in results), 2),
        "to_first_start_s": round(ordered[0]["started_at"] - min(j["created_at"] for j in jobs), 2),
        "between_jobs_s": round(sum(b["started_at"] - a["finished_at"] for a, b in itertools.pairwise(ordered)), 2),
        "in_worker_other_s": round(in_worker - sum(r["generation_seconds"] + r["load_seconds"] for r in results), 2),
        "levels": dict(Counter(r["level"] for r in results)),
        "pass_rate": round(sum(passes) / len(passes), 3) if passes else None,
        "tokens_out": sum(r["tokens_out"] for r in results),
    }


def plain_loop(model_path: Path, paragraphs: list[Paragraph], n_ctx: int, max_tokens: int) -> dict[str, Any]:
    """The paragraphs through raw llama-cpp-python: a first pass timed from before the load, then a second."""
    import llama_cpp

    def one_pass(llm: Any) -> tuple[float, int]:
        chat = bool(llm.metadata.get("tokenizer.chat_template"))
        started, tokens = time.perf_counter(), 0
        for p in paragraphs:
            if chat:
                messages = build_messages(p.text, p.grade_level, p.subject)
                out = llm.create_chat_completion(messages, max_tokens=max_tokens, temperature=0.0)
            else:  # a base model: the service's few-shot completion
                prompt = build_prompt(p.text, p.grade_level, p.subject)
                out = llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, stop=list(STOP))
            tokens += out["usage"]["completion_tokens"]
        return time.perf_counter() - started, tokens

    started = time.perf_counter()
    llm = llama_cpp.Llama(
        model_path=str(model_path), n_ctx=n_ctx, n_threads=THREADS, n_threads_batch=THREADS, verbose=False
    )
    load = time.perf_counter() - started
    first, tokens = one_pass(llm)
    steady, _ = one_pass(llm)
    n = len(paragraphs)
    return {
        "load_s": round(load, 2),
        "first_s": round(load + first, 2),
        "first_jobs_per_min": round(n / (load + first) * 60, 2),
        "steady_s": round(steady, 2),
        "steady_jobs_per_min": round(n / steady * 60, 2),
        "tokens_out": tokens,
    }


def bundled_path(model: str, workdir: Path) -> Path:
    """The bundled model's GGUF, assembled into a scratch cache (the loop's copy; the service makes its own)."""
    from worker.bundles import BUNDLED

    return BUNDLED[model].assemble(workdir / "loop")


def calibrated(redis_url: str) -> bool:
    """Whether the service's worker has finished calibrating its host (the marker calibration leaves)."""
    return bool(redis.Redis.from_url(redis_url).keys(f"{DONE_PREFIX}*"))


def main() -> None:
    """Run the measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--burst", type=int, default=40)
    parser.add_argument("--skip-dynamic", action="store_true")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a setting for the service")
    args = parser.parse_args()
    settings = Settings()
    texts = list(ALL_PARAGRAPHS)
    batch = texts[: args.jobs]
    burst = (texts * 2)[: args.burst]
    service_env = dict(pair.split("=", 1) for pair in args.env)
    report: dict[str, Any] = {"model": args.model, "jobs": args.jobs, "burst": args.burst, "env": service_env}
    work = RESULTS / f"firstbatch-{args.model}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    path = bundled_path(args.model, work)
    report["loop"] = loop = plain_loop(path, batch, settings.n_ctx, settings.job_default_max_tokens)
    print("loop", loop, flush=True)
    with fresh_service(args.model, work / "fixed", service_env) as (client, redis_url):
        report["first"] = run_batch(client, items_for(batch, args.model, "int4"))
        print("first batch", report["first"], flush=True)
        report["steady"] = run_batch(client, items_for(batch, args.model, "int4"))
        print("steady", report["steady"], flush=True)
    shutil.rmtree(work / "fixed" / "cache", ignore_errors=True)
    if not args.skip_dynamic:
        with fresh_service(args.model, work / "burst-int4", service_env) as (client, redis_url):
            report["burst_int4"] = run_batch(client, items_for(burst, args.model, "int4"))
            print("burst fixed int4", report["burst_int4"], flush=True)
        shutil.rmtree(work / "burst-int4" / "cache", ignore_errors=True)
        with fresh_service(args.model, work / "burst-dynamic", service_env) as (client, redis_url):
            report["burst_dynamic"] = run_batch(client, items_for(burst, args.model, None))
            print("burst dynamic, fresh", report["burst_dynamic"], flush=True)
            started = time.monotonic()
            wait_for(lambda: calibrated(redis_url), 900, "the host's calibration", interval=2.0)
            report["calibration_wait_s"] = round(time.monotonic() - started, 1)
            report["burst_dynamic_calibrated"] = run_batch(client, items_for(burst, args.model, None))
            print("burst dynamic, calibrated", report["burst_dynamic_calibrated"], flush=True)
        shutil.rmtree(work / "burst-dynamic" / "cache", ignore_errors=True)
        with fresh_service(args.model, work / "burst-int4-after", service_env) as (client, redis_url):
            report["burst_int4_after"] = run_batch(client, items_for(burst, args.model, "int4"))
            print("burst fixed int4 again", report["burst_int4_after"], flush=True)
        shutil.rmtree(work / "burst-int4-after" / "cache", ignore_errors=True)
    report["loop_after"] = plain_loop(path, batch, settings.n_ctx, settings.job_default_max_tokens)
    print("loop again", report["loop_after"], flush=True)
    shutil.rmtree(work / "loop", ignore_errors=True)
    print(markdown(report))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"firstbatch-{args.model}.json").write_text(json.dumps(report, indent=2) + "\n")


def markdown(report: dict[str, Any]) -> str:
    """The figures as Markdown tables, with the ratios the targets are about."""
    loop = {
        key: statistics.mean([report["loop"][key], report["loop_after"][key]])
        for key in ("first_jobs_per_min", "steady_jobs_per_min")
    }

    def row(name: str, run: dict[str, Any], base: float) -> str:
        levels = ", ".join(f"{k} {v}" for k, v in run["levels"].items())
        rate = run["jobs_per_min"]
        return f"| {name} | {rate:.1f} | {rate / base:.2f}x | {levels} | {run['pass_rate']} |"

    lines = [
        f"model {report['model']}, {report['jobs']} texts per batch, {THREADS} threads",
        "",
        "(plain loop: the mean of one run before the services and one after)",
        "",
        "| run | jobs/min | vs plain loop | levels | pass rate |",
        "|---|---|---|---|---|",
        f"| plain loop, first pass (load included) | {loop['first_jobs_per_min']:.1f} | 1.00x | int4 | - |",
        f"| plain loop, second pass | {loop['steady_jobs_per_min']:.1f} | 1.00x | int4 | - |",
        row("service fixed int4, first batch after up", report["first"], loop["first_jobs_per_min"]),
        row("service fixed int4, second batch", report["steady"], loop["steady_jobs_per_min"]),
    ]
    if "burst_dynamic" in report:
        fixed = [report[key]["jobs_per_min"] for key in ("burst_int4", "burst_int4_after") if key in report]
        best = statistics.mean(fixed)
        caption = f"burst of {report['burst']} (fresh cache and Redis each, gate off), in this order; the ratio is to"
        lines += ["", caption, "the mean of the fixed int4 runs before and after the dynamic service", ""]
        lines += ["| run | jobs/min | vs fixed int4 | levels | pass rate |", "|---|---|---|---|---|"]
        lines.append(row("fixed int4, before", report["burst_int4"], best))
        lines.append(row("dynamic, fresh", report["burst_dynamic"], best))
        waited = report["calibration_wait_s"]
        lines.append(row(f"dynamic, after calibration ({waited} s)", report["burst_dynamic_calibrated"], best))
        if "burst_int4_after" in report:
            lines.append(row("fixed int4, after", report["burst_int4_after"], best))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
