"""The whole service under a burst and under a steady Poisson stream, with fixed levels and with the dynamic policy.

    .venv/bin/python -m bench.serving [--burst 40] [--poisson-seconds 60] [--rate-factor 1.5] [--policies ...]

One Celery worker (solo pool, llama.cpp on 2 threads: the machine has 2 cores) and the web app under gunicorn,
on their own Redis DB. Policies: fixed fp16, int8, int4 and int2 (every job sends force_quantization) and
dynamic (no force: the worker's decision engine with its defaults, hysteresis of 3 decisions or 30 s). The
quality gate is on (the service's default): a draft that fails the checker is retried within its budget.
For each policy a fresh worker starts, one warm-up job loads its first model (not counted), the first worker
calibrates the host (the bench waits for it: a host calibrates once, then runs on its profiles), then:
(a) burst: --burst jobs in one POST /api/v1/batches (paragraphs of bench.paragraphs in turn);
(b) Poisson: a fresh worker again, one warm-up job, then jobs sent open-loop at exponential gaps for
    --poisson-seconds at rate = --rate-factor x fixed fp16's burst throughput (the same seeded arrival times
    and paragraphs for every policy), then up to --drain seconds for the queue to empty.
Per run: jobs/min (succeeded jobs over first submission to last finish), latency p50/p95/max (created_at to
finished_at, server clocks), the quality-gate pass rate (share of results whose quality verdict is `pass`) and
drafts per job, mean quality (ROUGE-L F1 of each output against the fp16 reference output of its
paragraph, bench/results/reference.json from bench.levels; fp16 outputs are made here if it is missing), the
levels used, and re-optimisations (job results' `reoptimized` field, and /metrics). /api/v1/quantization/status
is sampled every 0.5 s; the dynamic runs are plotted (queue depth and level over time) to
bench/results/serving_dynamic_<run>.png. Then issue 12's checks, for the burst and the stream: dynamic's
jobs/min >= 0.97x the best fixed level's, its p95 <= that level's p95 x 1.10, its pass rate within 3 points of
fixed fp16's. --quick: a burst of 8 and 20 s of arrivals (checks the benchmark runs; figures are noise).
Writes bench/results/serving.json.
"""

from __future__ import annotations

import collections
import os
import random
import statistics
import threading
import time
from typing import Any

from bench.common import (
    QUALITY_MAX_TOKENS,
    RESULTS,
    THREADS,
    CpuMeter,
    bench_parser,
    checks_table,
    ensure_variants,
    load_reference,
    percentile,
    rouge_l_f1,
    save_reference,
    start_run,
    table,
    wait_for_idle_cpu,
)
from bench.overhead import job_body
from bench.paragraphs import PARAGRAPHS
from bench.service import Service, running_service

POLICIES: dict[str, str | None] = {
    "fixed-fp16": "fp16",
    "fixed-int8": "int8",
    "fixed-int4": "int4",
    "fixed-int2": "int2",
    "dynamic": None,
}
QUICK = {"burst": 8, "poisson_seconds": 20.0, "drain": 60.0}
"""--quick: a burst of 8 and 20 s of Poisson arrivals (noisy; checks that the benchmark works)."""
SPEED_MARGIN = 0.97
P95_MARGIN = 1.10
PASS_RATE_POINTS = 3.0
LEVEL_Y = {"fp16": 3, "int8": 2, "int4": 1, "int2": 0}
SAMPLE_SECONDS = 0.5
SEED = 20240611


class Sampler(threading.Thread):
    """Samples the status API (queue depth, jobs running, each worker's held level and loaded models)."""

    def __init__(self, svc: Service, t0: float) -> None:
        super().__init__(daemon=True)
        self.svc, self.t0 = svc, t0
        self.samples: list[dict[str, Any]] = []
        self.stopped = threading.Event()
        self.meter = CpuMeter()

    def run(self) -> None:
        """Sample until stopped."""
        while not self.stopped.is_set():
            try:
                body = self.svc.status()
                worker = (body.get("workers") or [{}])[0]
                self.samples.append(
                    {
                        "t": time.time() - self.t0,
                        "loadavg1": os.getloadavg()[0],
                        "others_cpu": self.meter.read(),
                        "depth": body["queue"]["depth"],
                        "running": body["queue"]["running"],
                        "held_levels": worker.get("current_levels") or {},
                        "loaded": [m.get("level") for m in worker.get("current_models") or []],
                    }
                )
            except Exception as exc:  # a missed sample is not fatal
                self.samples.append({"t": time.time() - self.t0, "error": str(exc)})
            self.stopped.wait(SAMPLE_SECONDS)

    def stop(self) -> list[dict[str, Any]]:
        """Stop sampling; the samples."""
        self.stopped.set()
        self.join(5)
        return self.samples


def reference_outputs() -> dict[str, str]:
    """fp16 outputs per paragraph: bench.levels' file, or made here with the same code."""
    reference = load_reference()
    if reference is not None and set(reference) >= {p.pid for p in PARAGRAPHS}:
        return reference
    from bench.levels import bundled_spec, gguf_backend, simplify_all

    print("no fp16 reference outputs yet: making them (24 paragraphs at fp16)", flush=True)
    model = gguf_backend().load(bundled_spec(), "fp16")
    try:
        outputs = simplify_all(model, PARAGRAPHS)
    finally:
        model.close()
    reference = {o["pid"]: o["text"] for o in outputs}
    save_reference(reference, "bench.serving (GGUF F16 variant through LlamaCppBackend)")
    return reference


def fresh_worker(svc: Service, name: str, level: str | None, idle_wait: float) -> float:
    """Stop any worker, start a new one, run one warm-up job at the policy's level (not counted), then wait up
    to idle_wait s for other work on the machine to stop; the CPU % busy just before the run."""
    for old in [n for n in svc.procs if n != "web"]:
        svc.stop(old)
    svc.start_worker(name)
    record = svc.wait_job(svc.submit(job_body(PARAGRAPHS[-1], level)), timeout=300, interval=0.2)
    if record["status"] != "succeeded":
        raise RuntimeError(f"warm-up job for {name} ended {record['status']}: {record.get('error')}")
    svc.wait_calibrated()  # once per host: a worker meeting the model measures its levels first, when idle
    return wait_for_idle_cpu(idle_wait)


def summarize(records: dict[str, dict[str, Any]], pids: dict[str, str], reference: dict[str, str]) -> dict[str, Any]:
    """Throughput, latency, quality, levels and re-optimisations of one run's jobs."""
    done = [r for r in records.values() if r.get("status") == "succeeded"]
    latencies = [float(r["finished_at"]) - float(r["created_at"]) for r in done]
    span = (
        max(float(r["finished_at"]) for r in done) - min(float(r["created_at"]) for r in records.values())
        if done
        else 0.0
    )
    quality = [rouge_l_f1(r["result"]["text"], reference[pids[r["job_id"]]]) for r in done]
    levels = collections.Counter(r["result"]["level"] for r in done)
    verdicts = [(r["result"].get("quality") or {}).get("verdict") for r in done]
    return {
        "submitted": len(pids),
        "succeeded": len(done),
        "unfinished": len(pids) - len(done),
        "span_s": span,
        "jobs_per_min": 60 * len(done) / span if span > 0 else None,
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "max_s": max(latencies, default=None),
        "mean_quality": statistics.fmean(quality) if quality else None,
        "pass_rate": 100 * sum(1 for v in verdicts if v == "pass") / len(done) if done else None,
        "drafts_per_job": statistics.fmean(int((r["result"].get("gate") or {}).get("drafts", 1)) for r in done)
        if done
        else None,
        "levels": dict(sorted(levels.items(), key=lambda kv: LEVEL_Y[kv[0]], reverse=True)),
        "reoptimizations": sum(1 for r in done if r["result"].get("reoptimized")),
        "mean_tokens_out": statistics.fmean(r["result"]["tokens_out"] for r in done) if done else None,
        "mean_generation_s": statistics.fmean(r["result"]["generation_seconds"] for r in done) if done else None,
        "load_seconds_total": sum(r["result"]["load_seconds"] for r in done),
    }


def job_rows(records: dict[str, dict[str, Any]], pids: dict[str, str], t0: float) -> list[dict[str, Any]]:
    """Each job's timing and level, relative to the run's start (for the plot and the JSON)."""
    rows = []
    for job_id, r in records.items():
        result = r.get("result") or {}
        rows.append(
            {
                "pid": pids[job_id],
                "status": r.get("status"),
                "created": float(r["created_at"]) - t0,
                "started": float(r["started_at"]) - t0 if r.get("started_at") else None,
                "finished": float(r["finished_at"]) - t0 if r.get("finished_at") else None,
                "level": result.get("level"),
                "load": result.get("load"),
                "tokens_out": result.get("tokens_out"),
                "reoptimized": result.get("reoptimized"),
            }
        )
    return sorted(rows, key=lambda x: x["created"])


def run_burst(
    svc: Service, policy: str, level: str | None, n: int, reference: dict[str, str], idle_wait: float
) -> dict[str, Any]:
    """n jobs in one batch; wait for all (bounded)."""
    cpu_before = fresh_worker(svc, f"{policy}-burst", level, idle_wait)
    reopt_before = svc.metric("dynaquant_reoptimizations")
    paragraphs = [PARAGRAPHS[i % len(PARAGRAPHS)] for i in range(n)]
    t0 = time.time()
    sampler = Sampler(svc, t0)
    sampler.start()
    _, ids = svc.submit_batch([job_body(p, level) for p in paragraphs])
    records = svc.wait_jobs(ids, timeout=60 + 15 * n)
    samples = sampler.stop()
    pids = {job_id: p.pid for job_id, p in zip(ids, paragraphs, strict=True)}
    summary = summarize(records, pids, reference)
    summary["reoptimizations_metric"] = metric_delta(svc.metric("dynaquant_reoptimizations"), reopt_before)
    summary["mean_loadavg"] = mean_load(samples)
    summary["others_cpu_percent"] = others_cpu(samples)
    summary["cpu_busy_before_percent"] = cpu_before
    return {"summary": summary, "jobs": job_rows(records, pids, t0), "samples": samples}


def metric_delta(after: float | None, before: float | None) -> float | None:
    """Counter growth over a run, None when a scrape failed."""
    return None if after is None or before is None else after - before


def mean_load(samples: list[dict[str, Any]]) -> float | None:
    """Mean 1-minute load average over a run's samples (the worker itself adds about 2 while it computes)."""
    values = [s["loadavg1"] for s in samples if "loadavg1" in s]
    return statistics.fmean(values) if values else None


def others_cpu(samples: list[dict[str, Any]]) -> float | None:
    """Mean CPU share (% of both cores) that processes outside the benchmark took during a run."""
    values = [s["others_cpu"] for s in samples if "others_cpu" in s]
    return statistics.fmean(values) if values else None


def arrivals(rate: float, seconds: float, seed: int = SEED) -> list[float]:
    """Poisson arrival times (exponential gaps) in [0, seconds)."""
    rng = random.Random(seed)
    times, t = [], rng.expovariate(rate)
    while t < seconds:
        times.append(t)
        t += rng.expovariate(rate)
    return times


def run_poisson(
    svc: Service,
    policy: str,
    level: str | None,
    schedule: list[float],
    drain_s: float,
    reference: dict[str, str],
    idle_wait: float,
) -> dict[str, Any]:
    """Jobs sent at their scheduled times (open loop), then wait up to drain_s for the last to finish."""
    cpu_before = fresh_worker(svc, f"{policy}-poisson", level, idle_wait)
    reopt_before = svc.metric("dynaquant_reoptimizations")
    paragraphs = [PARAGRAPHS[i % len(PARAGRAPHS)] for i in range(len(schedule))]
    t0 = time.time()
    sampler = Sampler(svc, t0)
    sampler.start()
    ids: list[str] = []
    start = time.perf_counter()
    for at, p in zip(schedule, paragraphs, strict=True):
        delay = start + at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        ids.append(svc.submit(job_body(p, level)))
    records = svc.wait_jobs(ids, timeout=drain_s)
    samples = sampler.stop()
    for job_id in ids:  # bounded run: whatever is still waiting is cancelled and counted as unfinished
        if records.get(job_id, {}).get("status") not in ("succeeded", "failed", "cancelled"):
            svc.http.delete(svc.url(f"/api/v1/jobs/{job_id}"), timeout=10)
    pids = {job_id: p.pid for job_id, p in zip(ids, paragraphs, strict=True)}
    summary = summarize(records, pids, reference)
    summary["reoptimizations_metric"] = metric_delta(svc.metric("dynaquant_reoptimizations"), reopt_before)
    summary["offered_per_min"] = 60 * len(schedule) / max(schedule[-1], 1e-9) if schedule else None
    summary["mean_loadavg"] = mean_load(samples)
    summary["others_cpu_percent"] = others_cpu(samples)
    summary["cpu_busy_before_percent"] = cpu_before
    return {"summary": summary, "jobs": job_rows(records, pids, t0), "samples": samples}


def plot(run: dict[str, Any], title: str, path: str) -> None:
    """Queue depth (and jobs running) and the level of each job over time, for one run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = [s for s in run["samples"] if "depth" in s]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, height_ratios=[1, 1])
    top.step([s["t"] for s in samples], [s["depth"] for s in samples], where="post", label="queued")
    top.step([s["t"] for s in samples], [s["running"] for s in samples], where="post", label="running")
    top.set_ylabel("jobs")
    top.legend(loc="upper right")
    top.set_title(title)
    for job in run["jobs"]:
        if job["started"] is not None and job["finished"] is not None and job["level"]:
            y = LEVEL_Y[job["level"]]
            bottom.plot([job["started"], job["finished"]], [y, y], color="tab:blue", linewidth=6, solid_capstyle="butt")
    held = [(s["t"], next(iter(s["held_levels"].values()), None)) for s in samples]
    held = [(t, LEVEL_Y[lv]) for t, lv in held if lv in LEVEL_Y]
    if held:
        bottom.step([t for t, _ in held], [y for _, y in held], where="post", color="tab:orange", linewidth=1,
                    label="held level (worker heartbeat)")  # fmt: skip
        bottom.legend(loc="upper right")
    bottom.set_yticks(list(LEVEL_Y.values()), list(LEVEL_Y.keys()))
    bottom.set_ylim(-0.5, 3.5)
    bottom.set_ylabel("level of each job")
    bottom.set_xlabel("seconds since the first submission")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def results_table(runs: dict[str, dict[str, Any]]) -> str:
    """One row per policy."""
    rows = []
    for policy, run in runs.items():
        s = run["summary"]
        rows.append(
            [
                policy,
                f"{s['succeeded']}/{s['submitted']}",
                s["jobs_per_min"],
                s["p50_s"],
                s["p95_s"],
                s["max_s"],
                s.get("pass_rate"),
                s.get("drafts_per_job"),
                s["mean_quality"],
                ", ".join(f"{k} {v}" for k, v in s["levels"].items()),
                s["reoptimizations"],
                s["mean_tokens_out"],
                s["mean_generation_s"],
                s.get("others_cpu_percent"),
            ]
        )
    headers = [
        "policy", "done", "jobs/min", "p50 s", "p95 s", "max s", "gate pass %", "drafts/job", "ROUGE-L vs fp16",
        "levels used", "re-opts",
        "tokens out", "generation s", "others' CPU %",
    ]  # fmt: skip
    return table(headers, rows)


def checks(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 12's three checks of one run kind (burst or Poisson): dynamic against the best fixed level and fp16."""
    s = {p: r["summary"] for p, r in runs.items()}
    fixed = [p for p in s if p.startswith("fixed-") and s[p]["jobs_per_min"]]
    if "dynamic" not in s or not fixed or not s["dynamic"]["jobs_per_min"]:
        return []
    d = s["dynamic"]
    best = max(fixed, key=lambda p: s[p]["jobs_per_min"])
    b = s[best]
    speed = d["jobs_per_min"] / b["jobs_per_min"]
    out = [
        {
            "check": f"dynamic jobs/min >= {SPEED_MARGIN}x the best fixed level's ({best})",
            "measured": f"{d['jobs_per_min']:.1f} vs {b['jobs_per_min']:.1f} ({speed:.2f}x)",
            "passed": speed >= SPEED_MARGIN,
        },
        {
            "check": f"dynamic p95 <= {best}'s p95 x {P95_MARGIN:.2f}",
            "measured": f"{d['p95_s']:.1f} s vs {b['p95_s']:.1f} s",
            "passed": d["p95_s"] is not None and b["p95_s"] is not None and d["p95_s"] <= P95_MARGIN * b["p95_s"],
        },
    ]
    if "fixed-fp16" in s and s["fixed-fp16"].get("pass_rate") is not None and d.get("pass_rate") is not None:
        f16 = s["fixed-fp16"]["pass_rate"]
        out.append(
            {
                "check": f"dynamic gate pass rate within {PASS_RATE_POINTS:g} points of fixed fp16's",
                "measured": f"{d['pass_rate']:.1f}% vs {f16:.1f}% ({d['pass_rate'] - f16:+.1f} points)",
                "passed": d["pass_rate"] >= f16 - PASS_RATE_POINTS,
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the serving benchmark, print its tables and plot the dynamic runs."""
    parser = bench_parser(__doc__)
    parser.add_argument("--burst", type=int, default=40, help="jobs in the burst (default 40)")
    parser.add_argument("--poisson-seconds", type=float, default=60.0, help="arrival window (default 60)")
    parser.add_argument("--rate-factor", type=float, default=1.5, help="Poisson rate / fixed fp16 capacity")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds to wait for the queue after arrivals")
    parser.add_argument("--policies", default=",".join(POLICIES), help="comma-separated subset of the policies")
    parser.add_argument("--no-poisson", action="store_true", help="burst only")
    parser.add_argument("--quick", action="store_true", help="burst 8, Poisson 20 s, drain 60 s (noisy)")
    args = parser.parse_args(argv)
    if args.quick:
        args.burst, args.poisson_seconds, args.drain = QUICK["burst"], QUICK["poisson_seconds"], QUICK["drain"]
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    ensure_variants()
    reference = reference_outputs()
    rec = start_run("serving", args, argv)
    rec.data.update(
        threads=THREADS,
        workers=1,
        max_tokens=QUALITY_MAX_TOKENS,
        burst_jobs=args.burst,
        poisson_seconds=args.poisson_seconds,
        rate_factor=args.rate_factor,
        policies={p: POLICIES[p] or "no force (decision engine defaults)" for p in policies},
        quality_gate=True,
        quick=args.quick,
    )
    bursts: dict[str, dict[str, Any]] = {}
    poissons: dict[str, dict[str, Any]] = {}
    with running_service() as svc:
        svc.start_web()
        for policy in policies:
            level = POLICIES[policy]
            print(f"{policy}: burst of {args.burst}", flush=True)
            bursts[policy] = run_burst(svc, policy, level, args.burst, reference, args.wait_idle)
            print("  " + str(bursts[policy]["summary"]), flush=True)
            rec.data["burst"] = bursts
            rec.save(final=False)
        if not args.no_poisson:
            capacity = next(bursts[p]["summary"]["jobs_per_min"] for p in ("fixed-fp16", *policies) if p in bursts)
            rate = args.rate_factor * capacity / 60
            schedule = arrivals(rate, args.poisson_seconds)
            rec.data["poisson"] = {"rate_per_s": rate, "capacity_basis_jobs_per_min": capacity, "jobs": len(schedule)}
            for policy in policies:
                print(f"{policy}: Poisson {rate:.2f} jobs/s for {args.poisson_seconds:g} s", flush=True)
                poissons[policy] = run_poisson(
                    svc, policy, POLICIES[policy], schedule, args.drain, reference, args.wait_idle
                )
                print("  " + str(poissons[policy]["summary"]), flush=True)
                rec.data["poisson"]["runs"] = poissons
                rec.save(final=False)
    print(f"\nBurst of {args.burst} jobs (1 worker, 2 threads)\n" + results_table(bursts))
    if poissons:
        p = rec.data["poisson"]
        print(
            f"\nPoisson stream: {p['rate_per_s'] * 60:.1f} jobs/min offered ({args.rate_factor:g} x the burst's "
            f"{p['capacity_basis_jobs_per_min']:.1f}) for {args.poisson_seconds:g} s, {p['jobs']} jobs\n"
            + results_table(poissons)
        )
    rec.data["checks"] = {"burst": checks(bursts), "poisson": checks(poissons)}
    for kind, found in rec.data["checks"].items():
        if found:
            print(f"\nIssue 12 checks, {kind}" + (" (--quick: noise, not a verdict)" if args.quick else "") + "\n"
                  + checks_table(found))  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    plots = {}
    for kind, runs in (("burst", bursts), ("poisson", poissons)):
        if "dynamic" in runs:
            path = RESULTS / f"serving_dynamic_{kind}.png"
            plot(runs["dynamic"], f"dynamic policy, {kind}: queue and levels (1 worker, 2 threads)", str(path))
            plots[kind] = str(path.relative_to(RESULTS.parents[1]))
    rec.data["plots"] = plots
    rec.save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
