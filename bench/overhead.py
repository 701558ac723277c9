"""What the service costs on top of llama.cpp, and how fast its API takes jobs.

    .venv/bin/python -m bench.overhead [--levels int4,fp16] [--jobs 8] [--rate 100] [--seconds 10]

1. Tokens/s through the whole service (HTTP -> Celery on Redis -> worker -> result record) against raw
   llama-cpp-python on the same prompts (worker.simplify.build_prompt), level, greedy decoding, stop strings,
   context (DYNAQUANT_N_CTX, 4096) and threads (2). Jobs are forced to the level and run one at a time; raw and
   service calls alternate paragraph by paragraph so drifting background load hits both alike; both keep their
   model loaded across calls (llama-cpp-python reuses the shared few-shot prefix in both). The service is
   measured two ways: the result's tokens_out / generation_seconds (inside the worker) and tokens_out over the
   job's wall time (created_at to finished_at, server clocks: queueing, dispatch and bookkeeping included).
   The ratio is the median over paragraphs of service tok/s / raw tok/s for the same paragraph (the same prompt
   and, greedy, the same tokens), so one call slowed by another process on the 2 cores does not swing it; the
   ratio of summed tokens over summed seconds is shown too.
2. API enqueue: POST /api/v1/jobs open-loop at a fixed rate (requests sent at their scheduled times whatever
   the answers do; latency counted from the scheduled time) against gunicorn (1 process, 8 threads), with no
   worker running (jobs pile up in the queue, which is emptied after), then closed-loop with 8 clients for the
   maximum rate. The load generator runs on the same 2 cores.
Writes bench/results/overhead.json.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from bench.common import (
    QUALITY_MAX_TOKENS,
    THREADS,
    CpuMeter,
    bench_parser,
    ensure_variants,
    median,
    percentile,
    start_run,
    table,
    wait_for_idle_cpu,
)
from bench.paragraphs import PARAGRAPHS, Paragraph
from bench.service import Service, running_service

DEFAULT_LEVELS = ("int4", "fp16")


def job_body(p: Paragraph, level: str | None = None, quality_check: bool | None = None) -> dict[str, Any]:
    """The API body for a paragraph (forced to a level when given; the quality gate as the service's default
    unless quality_check says)."""
    body: dict[str, Any] = {
        "text": p.text,
        "grade_level": p.grade_level,
        "subject": p.subject,
        "max_tokens": QUALITY_MAX_TOKENS,
    }
    if level is not None:
        body["force_quantization"] = level
    if quality_check is not None:
        body["quality_check"] = quality_check
    return body


def raw_llama(level: str) -> Any:
    """llama-cpp-python on the level's variant, with the worker's context size and threads."""
    import llama_cpp

    from worker.settings import get_settings

    path = ensure_variants((level,))[level]
    return llama_cpp.Llama(
        model_path=str(path), n_ctx=get_settings().n_ctx, n_threads=THREADS, n_threads_batch=THREADS, verbose=False
    )


def raw_call(llm: Any, p: Paragraph) -> dict[str, Any]:
    """One raw completion of the service's prompt; tokens and seconds."""
    from worker.simplify import STOP, build_prompt

    prompt = build_prompt(p.text, p.grade_level, p.subject)
    started = time.perf_counter()
    out = llm.create_completion(prompt, max_tokens=QUALITY_MAX_TOKENS, temperature=0.0, stop=list(STOP))
    seconds = time.perf_counter() - started
    return {"pid": p.pid, "tokens_out": int(out["usage"]["completion_tokens"]), "seconds": seconds}


def service_call(svc: Service, p: Paragraph, level: str) -> dict[str, Any]:
    """One job through the service, waited for; its tokens, generation seconds and wall seconds."""
    record = svc.wait_job(svc.submit(job_body(p, level)), timeout=300, interval=0.1)
    if record["status"] != "succeeded":
        raise RuntimeError(f"job for {p.pid} at {level} ended {record['status']}: {record.get('error')}")
    result = record["result"]
    return {
        "pid": p.pid,
        "tokens_out": int(result["tokens_out"]),
        "generation_s": float(result["generation_seconds"]),
        "wall_s": float(record["finished_at"]) - float(record["created_at"]),
        "queue_s": float(record["started_at"]) - float(record["created_at"]),
        "load_s": float(result["load_seconds"]),
        "level": result["level"],
    }


def compare_level(svc: Service, level: str, jobs: int) -> dict[str, Any]:
    """Alternate raw and service calls over `jobs` paragraphs (after one warm-up each); aggregate tokens/s."""
    llm = raw_llama(level)
    try:
        raw_call(llm, PARAGRAPHS[-1])
        service_call(svc, PARAGRAPHS[-1], level)  # loads the model in the worker
        raw, service = [], []
        for p in PARAGRAPHS[:jobs]:
            raw.append(raw_call(llm, p))
            service.append(service_call(svc, p, level))
    finally:
        llm.close()
    raw_tps = sum(r["tokens_out"] for r in raw) / sum(r["seconds"] for r in raw)
    gen_tps = sum(s["tokens_out"] for s in service) / sum(s["generation_s"] for s in service)
    wall_tps = sum(s["tokens_out"] for s in service) / sum(s["wall_s"] for s in service)
    # paired per paragraph (same prompt, same tokens): raw seconds / service seconds = service tok/s / raw tok/s
    paired_gen = [r["seconds"] / s["generation_s"] for r, s in zip(raw, service, strict=True)]
    paired_wall = [r["seconds"] / s["wall_s"] for r, s in zip(raw, service, strict=True)]
    return {
        "raw": raw,
        "service": service,
        "raw_tok_s": raw_tps,
        "service_generation_tok_s": gen_tps,
        "service_wall_tok_s": wall_tps,
        "aggregate_ratio_generation": gen_tps / raw_tps,
        "aggregate_ratio_wall": wall_tps / raw_tps,
        "ratio_generation": median(paired_gen),
        "ratio_wall": median(paired_wall),
        "paired_ratios_wall": paired_wall,
        "median_overhead_s": median([s["wall_s"] - s["generation_s"] for s in service]),
        "same_token_counts": sum(1 for r, s in zip(raw, service, strict=True) if r["tokens_out"] == s["tokens_out"]),
    }


# ---------------------------------------------------------------- API enqueue


def open_loop(svc: Service, rate: float, seconds: float) -> dict[str, Any]:
    """POST /api/v1/jobs at `rate` per second for `seconds`, each request sent at its scheduled time."""
    local = threading.local()
    body = job_body(PARAGRAPHS[0])
    n = int(rate * seconds)
    results: list[tuple[float, float, int]] = []
    lock = threading.Lock()

    def send(scheduled: float) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        sent = time.perf_counter()
        try:
            code = session.post(svc.url("/api/v1/jobs"), json=body, timeout=30).status_code
        except requests.RequestException:
            code = 0
        done = time.perf_counter()
        with lock:
            results.append((done - scheduled, done - sent, code))

    with ThreadPoolExecutor(64) as pool:
        start = time.perf_counter() + 0.2
        for i in range(n):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, scheduled)
    elapsed = time.perf_counter() - start
    ok = [r for r in results if r[2] == 202]
    latency = [r[0] for r in ok]
    return {
        "rate_offered": rate,
        "seconds": seconds,
        "requests": n,
        "accepted": len(ok),
        "errors": n - len(ok),
        "throughput_per_s": len(ok) / elapsed,
        "p50_ms": 1000 * (percentile(latency, 50) or 0),
        "p99_ms": 1000 * (percentile(latency, 99) or 0),
        "max_ms": 1000 * max(latency, default=0),
        "p50_service_ms": 1000 * (percentile([r[1] for r in ok], 50) or 0),
    }


def closed_loop(svc: Service, clients: int, seconds: float) -> dict[str, Any]:
    """`clients` threads POSTing jobs back to back for `seconds`: the maximum enqueue rate."""
    body = job_body(PARAGRAPHS[0])
    stop = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(clients)]

    def client(i: int) -> None:
        session = requests.Session()
        while time.perf_counter() < stop:
            sent = time.perf_counter()
            if session.post(svc.url("/api/v1/jobs"), json=body, timeout=30).status_code == 202:
                latencies[i].append(time.perf_counter() - sent)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    elapsed = time.perf_counter() - started
    flat = [x for xs in latencies for x in xs]
    return {
        "clients": clients,
        "seconds": seconds,
        "accepted": len(flat),
        "throughput_per_s": len(flat) / elapsed,
        "p50_ms": 1000 * (percentile(flat, 50) or 0),
        "p99_ms": 1000 * (percentile(flat, 99) or 0),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the overhead benchmark and print its tables."""
    parser = bench_parser(__doc__)
    parser.add_argument("--levels", default=",".join(DEFAULT_LEVELS), help="levels to compare (default int4,fp16)")
    parser.add_argument("--jobs", type=int, default=12, help="paragraphs per level (default 12)")
    parser.add_argument("--rate", type=float, default=100.0, help="open-loop requests per second (default 100)")
    parser.add_argument("--seconds", type=float, default=10.0, help="open-loop duration (default 10)")
    args = parser.parse_args(argv)
    levels = [x.strip() for x in args.levels.split(",") if x.strip()]
    ensure_variants()
    rec = start_run("overhead", args, argv)
    rec.data.update(threads=THREADS, max_tokens=QUALITY_MAX_TOKENS, jobs_per_level=args.jobs)
    with running_service() as svc:
        svc.start_web()
        svc.start_worker()
        per_level = {}
        for level in levels:
            print(f"{level}: {args.jobs} paragraphs, raw and through the service", flush=True)
            cpu_before = wait_for_idle_cpu(args.wait_idle)
            meter = CpuMeter()
            per_level[level] = compare_level(svc, level, args.jobs)
            per_level[level]["others_cpu_percent"] = meter.read()
            per_level[level]["cpu_busy_before_percent"] = cpu_before
        rec.data["tokens"] = per_level
        svc.stop("w1")  # no worker: enqueued jobs stay queued and take no CPU
        print(f"API: open loop at {args.rate:g} req/s for {args.seconds:g} s, no worker running", flush=True)
        rec.data["enqueue_open_loop"] = open_loop(svc, args.rate, args.seconds)
        svc.clear_queue()
        rec.data["enqueue_closed_loop"] = closed_loop(svc, 8, 5.0)
        svc.clear_queue()
    rows = [
        [
            level,
            len(r["service"]),
            r["raw_tok_s"],
            r["service_generation_tok_s"],
            r["service_wall_tok_s"],
            r["aggregate_ratio_wall"],
            r["ratio_generation"],
            r["ratio_wall"],
            1000 * (r["median_overhead_s"] or 0),
            f"{r['same_token_counts']}/{len(r['service'])}",
        ]
        for level, r in per_level.items()
    ]
    headers = [
        "level", "jobs", "raw tok/s", "service tok/s (in worker)", "service tok/s (wall)", "ratio of sums (wall)",
        "median ratio (in worker)", "median ratio (wall)", "wall - generation ms (median)", "same token count",
    ]  # fmt: skip
    print("\n" + table(headers, rows))
    o, c = rec.data["enqueue_open_loop"], rec.data["enqueue_closed_loop"]
    enqueue_rows = [
        ["open loop", o["rate_offered"], o["throughput_per_s"], o["p50_ms"], o["p99_ms"], o["max_ms"], o["errors"]],
        ["closed loop, 8 clients", None, c["throughput_per_s"], c["p50_ms"], c["p99_ms"], None, None],
    ]
    headers = ["API enqueue", "offered req/s", "accepted req/s", "p50 ms", "p99 ms", "max ms", "errors"]
    print("\n" + table(headers, enqueue_rows, 1))
    rec.data["summary"] = {
        level: {"ratio_generation": r["ratio_generation"], "ratio_wall": r["ratio_wall"]}
        for level, r in per_level.items()
    }
    rec.save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
