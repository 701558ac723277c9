"""Jobs/min end to end: the service at a fixed level against a plain llama-cpp-python loop doing the same work,
and where the service's extra time per job goes.

    .venv/bin/python -m bench.loop [--jobs 24] [--level int4] [--quick]

1. Plain loop: `llama_cpp.Llama` on the level's variant file with the worker's context (DYNAQUANT_N_CTX) and
   threads (2), `create_completion` of the service's prompt (worker.simplify.build_prompt), stop strings and
   max_tokens, greedy, over --jobs paragraphs (bench.paragraphs), after one warm-up call. It runs first and after
   each service round (--rounds), so every service batch sits between two loops.
2. Service: `dynaquant`'s web app and one Celery worker (as bench.service starts them), one warm-up job, then the
   same paragraphs as ONE batch (POST /api/v1/batches) with force_quantization = the level and quality_check
   false (the gate off: equal work; the checker still writes each result's quality report). Jobs/min = jobs
   over first submission to last finish (server clocks). The ratio service / loop is the figure of issue 12
   (target >= 0.95): each round's service jobs/min over the mean of the loops either side, median over rounds.
   Also printed: the share of the service's wall time that is llama.cpp generation, which other processes on
   the shared cores do not move (they slow generation on both sides alike).
3. Breakdown from the job records: the batch POST and first dispatch, the gap between one job's finish and the
   next one's start (Celery: ack, task events, fetching the next message; the lease release), the worker's time
   per job outside llama.cpp, and llama.cpp's generation time in the service against the loop's.
4. Stage profile: the worker stopped, the same jobs run through worker.tasks.run_job in this process (its
   WorkerRuntime with heartbeat, same Redis, model and level), a timer around each stage (bench/stages.py):
   Redis writes, probes, the decision, the cancel checks during generation, the quality checker, result
   storing. Then a few jobs with the gate on (the default) for what the checker and its retries cost.
The previous run's figures (bench/results/loop.json, if any) are printed beside this run's.
Writes bench/results/loop.json.
"""

from __future__ import annotations

import itertools
import statistics
import time
from typing import Any

from bench.common import (
    QUALITY_MAX_TOKENS,
    THREADS,
    VARIANTS,
    CpuMeter,
    bench_parser,
    ensure_variants,
    read_result,
    start_run,
    table,
    wait_for_idle_cpu,
)
from bench.overhead import job_body, raw_call, raw_llama
from bench.paragraphs import PARAGRAPHS, Paragraph
from bench.service import Service, running_service
from bench.stages import STAGES, profile_jobs

TARGET = 0.95
QUICK_JOBS = 8


def plain_loop(level: str, paragraphs: list[Paragraph]) -> dict[str, Any]:
    """The paragraphs through raw llama-cpp-python, one after another (after one warm-up call)."""
    llm = raw_llama(level)
    try:
        raw_call(llm, PARAGRAPHS[-1])
        started = time.perf_counter()
        calls = [raw_call(llm, p) for p in paragraphs]
        seconds = time.perf_counter() - started
    finally:
        llm.close()
    return {
        "seconds": seconds,
        "jobs_per_min": 60 * len(calls) / seconds,
        "mean_call_s": statistics.fmean(c["seconds"] for c in calls),
        "calls": calls,
    }


def service_batch(svc: Service, level: str, paragraphs: list[Paragraph]) -> dict[str, Any]:
    """A fresh worker, one warm-up job, then the paragraphs as one batch at `level` with the gate off."""
    for old in [n for n in svc.procs if n != "web"]:
        svc.stop(old)
    svc.start_worker("w1")
    warm = svc.wait_job(svc.submit(job_body(PARAGRAPHS[-1], level, quality_check=False)), timeout=300, interval=0.2)
    if warm["status"] != "succeeded":
        raise RuntimeError(f"warm-up job ended {warm['status']}: {warm.get('error')}")
    _, ids = svc.submit_batch([job_body(p, level, quality_check=False) for p in paragraphs])
    records = svc.wait_jobs(ids, timeout=120 + 30 * len(ids), interval=0.5)
    done = [records[i] for i in ids if records.get(i, {}).get("status") == "succeeded"]
    if len(done) != len(ids):
        raise RuntimeError(f"{len(ids) - len(done)} of {len(ids)} service jobs did not succeed")
    span = max(float(r["finished_at"]) for r in done) - min(float(r["created_at"]) for r in done)
    return {
        "seconds": span,
        "jobs_per_min": 60 * len(done) / span,
        "tokens_out": [int(r["result"]["tokens_out"]) for r in done],
        "levels": sorted({r["result"]["level"] for r in done}),
        "breakdown": record_breakdown(done),
    }


def record_breakdown(records: list[dict[str, Any]]) -> dict[str, float]:
    """Milliseconds per job, from the records: first dispatch, gaps between jobs, worker time outside llama.cpp,
    generation."""
    jobs = sorted(records, key=lambda r: float(r["started_at"]))
    n = len(jobs)
    first = float(jobs[0]["started_at"]) - min(float(r["created_at"]) for r in jobs)
    gaps = [float(b["started_at"]) - float(a["finished_at"]) for a, b in itertools.pairwise(jobs)]
    in_worker = [float(r["finished_at"]) - float(r["started_at"]) for r in jobs]
    generation = [float(r["result"]["generation_seconds"]) for r in jobs]
    return {
        "batch_post_and_first_dispatch_ms": 1000 * first / n,
        "between_jobs_ms": 1000 * sum(gaps) / n,
        "worker_outside_generation_ms": 1000 * (sum(in_worker) - sum(generation)) / n,
        "generation_ms": 1000 * sum(generation) / n,
        "median_gap_ms": 1000 * statistics.median(gaps) if gaps else 0.0,
    }


def profile(svc: Service, level: str, paragraphs: list[Paragraph], gated: int) -> dict[str, Any]:
    """The stage profile in this process: the paragraphs with the gate off, then `gated` with it on."""
    from worker.settings import Settings

    for old in [n for n in svc.procs if n != "web"]:
        svc.stop(old)
    settings = Settings(redis_url=svc.redis_url, queue=svc.queue, variants_dir=VARIANTS, threads=THREADS)
    warm = job_body(PARAGRAPHS[-1], level, quality_check=False)
    off = profile_jobs(settings, [job_body(p, level, quality_check=False) for p in paragraphs], warm)
    on = profile_jobs(settings, [job_body(p, level) for p in paragraphs[:gated]], warm) if gated else None
    return {"gate_off": off, "gate_on": on}


def breakdown_table(runs: dict[str, dict[str, Any]]) -> str:
    """Per-job milliseconds by stage, one column per run (this one and the previous)."""
    names = list(runs)
    rows: list[list[Any]] = []
    record_rows = (
        ("batch_post_and_first_dispatch_ms", "batch POST + first dispatch (spread per job)"),
        ("between_jobs_ms", "between jobs: Celery ack, events, fetch; lease release"),
        ("worker_outside_generation_ms", "in the worker, outside llama.cpp"),
        ("generation_ms", "llama.cpp generation (service)"),
    )
    for key, label in record_rows:
        rows.append(["records", label] + [runs[n]["service"]["breakdown"].get(key) for n in names])
    rows.append(["loop", "plain loop, per call"] + [1000 * runs[n]["loop_mean_call_s"] for n in names])
    for key, label in STAGES:
        rows.append(["profile", label] + [runs[n]["profile"]["gate_off"]["per_job_ms"].get(key) for n in names])
    rows.append(["profile", "total run_job"] + [runs[n]["profile"]["gate_off"]["per_job_ms"]["total"] for n in names])
    rows.append(["profile", "heartbeat beats (own thread), ms per job"]
                + [runs[n]["profile"]["gate_off"]["heartbeat"]["ms_per_job"] for n in names])  # fmt: skip
    return table(["from", "ms per job", *names], rows, 1)


def summary_rows(runs: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """jobs/min of the loop and the service, and their ratio, per run."""
    return [
        [name, r["level"], r["jobs"], r["loop_jobs_per_min"], r["service"]["jobs_per_min"], r["ratio"],
         "yes" if r["ratio"] >= TARGET else "no"]
        for name, r in runs.items()
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the loop-vs-service benchmark and print its tables."""
    parser = bench_parser(__doc__)
    parser.add_argument("--jobs", type=int, default=24, help="paragraphs in the batch (default 24)")
    parser.add_argument("--level", default="int4", help="the fixed level (default int4)")
    parser.add_argument("--gated", type=int, default=8, help="jobs profiled with the quality gate on (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="service batches, each between two loops (default 3)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_JOBS} jobs, 4 gated, 1 round (noisy)")
    parser.add_argument("--no-profile", action="store_true", help="skip the in-process stage profile")
    args = parser.parse_args(argv)
    jobs, gated, rounds = (QUICK_JOBS, 4, 1) if args.quick else (args.jobs, args.gated, args.rounds)
    paragraphs = [PARAGRAPHS[i % len(PARAGRAPHS)] for i in range(jobs)]
    ensure_variants((args.level,))
    previous = read_result("loop")
    rec = start_run("loop", args, argv)
    rec.data.update(threads=THREADS, max_tokens=QUALITY_MAX_TOKENS, jobs=jobs, level=args.level, quick=args.quick)
    meter = CpuMeter()
    rec.data["cpu_busy_before_percent"] = wait_for_idle_cpu(args.wait_idle)
    print(f"plain loop: {jobs} paragraphs at {args.level}", flush=True)
    loops = [plain_loop(args.level, paragraphs)]
    services = []
    with running_service() as svc:
        svc.start_web()
        for round_ in range(rounds):
            print(f"round {round_ + 1}/{rounds}: service, {jobs} paragraphs as one batch at {args.level}, gate off; "
                  "then the plain loop again", flush=True)  # fmt: skip
            services.append(service_batch(svc, args.level, paragraphs))
            loops.append(plain_loop(args.level, paragraphs))
        rec.data["others_cpu_percent"] = meter.read()
        stages = None
        if not args.no_profile:
            print("stage profile in this process (gate off, then on)", flush=True)
            stages = profile(svc, args.level, paragraphs, gated)
    # each service round against the mean of the loops run just before and just after it
    ratios = [
        s["jobs_per_min"] / ((a["jobs_per_min"] + b["jobs_per_min"]) / 2)
        for s, a, b in zip(services, loops, loops[1:], strict=False)
    ]
    best = services[ratios.index(statistics.median_low(ratios))]
    same = sum(1 for c, t in zip(loops[0]["calls"], best["tokens_out"], strict=True) if c["tokens_out"] == t)
    b = best["breakdown"]
    rec.data.update(
        loops=loops,
        services=services,
        round_ratios=ratios,
        loop_jobs_per_min=statistics.fmean(x["jobs_per_min"] for x in loops),
        loop_mean_call_s=statistics.fmean(x["mean_call_s"] for x in loops),
        service=best,
        ratio=statistics.median_low(ratios),
        generation_share=b["generation_ms"] / sum(v for k, v in b.items() if k != "median_gap_ms"),
        same_token_counts=same,
        profile=stages,
    )
    runs: dict[str, dict[str, Any]] = {}
    if previous and previous.get("profile") and previous.get("service"):
        runs[f"previous ({previous['machine'].get('git_commit')})"] = previous
    runs[f"this run ({rec.data['machine'].get('git_commit')})"] = rec.data
    headers = ["run", "level", "jobs", "plain loop jobs/min", "service jobs/min", "ratio", f">= {TARGET}"]
    print("\n" + table(headers, summary_rows(runs)))
    print(
        "\nplain loop runs: "
        + " / ".join(f"{x['jobs_per_min']:.1f}" for x in loops)
        + " jobs/min; service rounds: "
        + " / ".join(f"{x['jobs_per_min']:.1f}" for x in services)
        + " jobs/min; ratio per round (against the loops "
        "either side): " + " / ".join(f"{r:.2f}" for r in ratios) + f"; same token count on {same}/{jobs} paragraphs"
    )
    print(
        f"share of the service's wall time spent in llama.cpp generation: {rec.data['generation_share']:.3f} "
        "(the ratio the service would reach if its llama.cpp ran as fast as the loop's; other processes on the "
        "shared cores move the measured ratio far more than that)"
    )
    if stages:
        print("\nWhere the time per job goes\n" + breakdown_table({k: v for k, v in runs.items() if v.get("profile")}))
        on = stages["gate_on"]
        off = stages["gate_off"]
        print(
            f"\nquality checker, gate off: {off['per_job_ms']['quality']:.1f} ms per job "
            f"({off['calls_per_job'].get('quality', 0):.1f} checks)"
        )
        if on:
            drafts = on["calls_per_job"].get("generation", 0)
            print(
                f"gate on ({on['jobs']} jobs): checker {on['per_job_ms']['quality']:.1f} ms per job "
                f"({on['calls_per_job'].get('quality', 0):.1f} checks), {drafts:.2f} drafts per job, run_job "
                f"{on['per_job_ms']['total']:.0f} ms against {off['per_job_ms']['total']:.0f} ms with the gate off"
            )
    rec.save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
