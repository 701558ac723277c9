"""A real memory squeeze: another process takes memory while a dynamic worker runs a stream of jobs.

    .venv/bin/python -m bench.squeeze [--before 20] [--hold 30] [--after 30] [--grab-gib 5] [--quick]

One worker with the dynamic policy (no force, quality_check false so jobs are short and the stream is dense)
runs a closed-loop stream: one job at a time, the next submitted when the last ends. The worker's memory band
edges are set by environment (QUANTIZE_MEMORY_COMFORTABLE / _MODERATE / _TIGHT / _CRITICAL) relative to the
machine's memory in use at the start, so that a modest allocation crosses them whatever the machine's size:
comfortable below +2.5 GiB (room for other processes' own swings on a shared machine), moderate to +3.0,
tight to +3.5, critical to +4.0 GiB, emergency above. After
--before seconds a separate process allocates --grab-gib GiB (default 6: into the emergency band, where the
decision engine steps down at once; at the tight and critical bands it waits for its hysteresis, 3 decisions)
and writes every page of it, holds it for --hold seconds, then exits and frees it; the stream runs --after
seconds more (and on, up to as long again, until 4 jobs started after the release: moving back up waits for
the hysteresis, 3 decisions). Printed: each job's start, level and memory reading over time, how long after the
squeeze the first job ran lower, how long after the release a job ran at the starting level again, and failed
jobs (target: none).
The chart is bench/results/squeeze.png. --quick: 10 / 15 / 20 seconds. Writes bench/results/squeeze.json.
"""

from __future__ import annotations

import collections
import subprocess
import threading
import time
from typing import Any

from bench.common import (
    RESULTS,
    bench_parser,
    checks_table,
    ensure_variants,
    python,
    start_run,
    table,
)
from bench.overhead import job_body
from bench.paragraphs import PARAGRAPHS
from bench.service import Service, running_service

GIB = 1024**3
EDGES_GIB = {"comfortable": 2.5, "moderate": 3.0, "tight": 3.5, "critical": 4.0}
"""Each band edge, GiB above the memory in use when the benchmark starts."""
LEVEL_Y = {"fp16": 3, "int8": 2, "int4": 1, "int2": 0}
GRAB = """
import sys, time
size = int(sys.argv[1])
block = bytearray(size)
block[::4096] = b"\\1" * len(range(0, size, 4096))
print("held", flush=True)
sys.stdin.read()
"""
"""The squeezing process: allocate, write every page (so it is resident), say so, hold until stdin closes."""


def band_env(total: int, used: int) -> dict[str, str]:
    """The worker's band edges as fractions, EDGES_GIB above the memory in use now."""
    return {
        f"QUANTIZE_MEMORY_{name.upper()}": f"{min((used + gib * GIB) / total, 0.99):.4f}"
        for name, gib in EDGES_GIB.items()
    }


class Stream(threading.Thread):
    """Closed loop: one job at a time, the next submitted as soon as the last one ended, until stopped."""

    def __init__(self, svc: Service, t0: float) -> None:
        super().__init__(daemon=True)
        self.svc, self.t0 = svc, t0
        self.stopped = threading.Event()
        self.records: list[dict[str, Any]] = []

    def run(self) -> None:
        """Submit, wait, repeat."""
        i = 0
        while not self.stopped.is_set():
            p = PARAGRAPHS[i % len(PARAGRAPHS)]
            i += 1
            try:
                record = self.svc.wait_job(self.svc.submit(job_body(p, None, quality_check=False)), 300, 0.1)
            except Exception as exc:  # recorded: a job the benchmark could not even submit or follow
                self.records.append({"status": "error", "error": str(exc), "t": time.time() - self.t0})
                continue
            self.records.append(record)


def sample_status(svc: Service, t0: float, stopped: threading.Event, out: list[dict[str, Any]]) -> None:
    """The worker's memory reading, band and held level, every 0.5 s."""
    while not stopped.is_set():
        try:
            worker = (svc.status().get("workers") or [{}])[0]
            memory = worker.get("memory") or {}
            out.append({"t": time.time() - t0, "used_fraction": memory.get("used_fraction"),
                        "held": next(iter((worker.get("current_levels") or {}).values()), None)})  # fmt: skip
        except Exception as exc:
            out.append({"t": time.time() - t0, "error": str(exc)})
        stopped.wait(0.5)


def job_rows(records: list[dict[str, Any]], t0: float) -> list[dict[str, Any]]:
    """Each job's start, finish, level and memory reading, relative to t0."""
    rows = []
    for r in records:
        result = r.get("result") or {}
        rows.append({
            "status": r.get("status"),
            "started": float(r["started_at"]) - t0 if r.get("started_at") else None,
            "finished": float(r["finished_at"]) - t0 if r.get("finished_at") else None,
            "level": result.get("level"),
            "memory_used": result.get("memory_used"),
            "error": (r.get("error") or {}).get("message") if isinstance(r.get("error"), dict) else r.get("error"),
        })  # fmt: skip
    return rows


def phase_levels(rows: list[dict[str, Any]], start: float, end: float) -> dict[str, int]:
    """Levels of the jobs that started in [start, end)."""
    got = collections.Counter(r["level"] for r in rows if r["started"] is not None and start <= r["started"] < end)
    return dict(sorted(got.items(), key=lambda kv: -LEVEL_Y.get(kv[0] or "", -1)))


def first_after(rows: list[dict[str, Any]], t: float, wanted: Any) -> dict[str, Any] | None:
    """The first job that started at or after t and whose level passes wanted(level)."""
    for r in sorted((r for r in rows if r["started"] is not None), key=lambda r: r["started"]):
        if r["started"] >= t and r["level"] and wanted(r["level"]):
            return r
    return None


def plot(rows: list[dict[str, Any]], samples: list[dict[str, Any]], squeeze: tuple[float, float], path: str) -> None:
    """Level of each job over time, the squeeze shaded, and memory in use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    mem = [s for s in samples if s.get("used_fraction") is not None]
    top.plot([s["t"] for s in mem], [100 * s["used_fraction"] for s in mem], color="tab:red")
    top.set_ylabel("memory in use %")
    top.axvspan(*squeeze, color="tab:red", alpha=0.1)
    top.set_title("memory squeeze: level of each job (dynamic worker)")
    for r in rows:
        if r["started"] is not None and r["finished"] is not None and r["level"]:
            y = LEVEL_Y[r["level"]]
            bottom.plot([r["started"], r["finished"]], [y, y], color="tab:blue", linewidth=6, solid_capstyle="butt")
    bottom.axvspan(*squeeze, color="tab:red", alpha=0.1, label="another process holds the memory")
    bottom.set_yticks(list(LEVEL_Y.values()), list(LEVEL_Y.keys()))
    bottom.set_ylim(-0.5, 3.5)
    bottom.set_xlabel("seconds since the stream started")
    bottom.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the squeeze and print the levels over time and the checks."""
    import psutil

    parser = bench_parser(__doc__)
    parser.add_argument("--before", type=float, default=20.0, help="seconds of stream before the squeeze")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds the memory is held")
    parser.add_argument("--after", type=float, default=30.0, help="seconds of stream after the release")
    parser.add_argument("--grab-gib", type=float, default=6.0, help="GiB the other process takes (default 6)")
    parser.add_argument("--quick", action="store_true", help="10 s before, 15 s held, 20 s after")
    args = parser.parse_args(argv)
    if args.quick:
        args.before, args.hold, args.after = 10.0, 15.0, 20.0
    ensure_variants()
    rec = start_run("squeeze", args, argv)
    vm = psutil.virtual_memory()
    used = int(vm.total - vm.available)
    if vm.available < (args.grab_gib + 2) * GIB:
        raise SystemExit(f"only {vm.available / GIB:.1f} GiB available: lower --grab-gib")
    env = band_env(int(vm.total), used)
    rec.data.update(total_gib=vm.total / GIB, used_gib_at_start=used / GIB, band_env=env, grab_gib=args.grab_gib,
                    edges_gib_above_start=EDGES_GIB, quick=args.quick)  # fmt: skip
    print(f"memory: {vm.total / GIB:.1f} GiB, {used / GIB:.1f} GiB in use; worker band edges {env}", flush=True)
    grabber: subprocess.Popen[str] | None = None
    with running_service(env) as svc:
        svc.start_web()
        svc.start_worker("w1")
        svc.wait_job(svc.submit(job_body(PARAGRAPHS[-1], None, quality_check=False)), 300, 0.2)
        t0 = time.time()
        stream, stopped, samples = Stream(svc, t0), threading.Event(), []  # type: list[dict[str, Any]]
        sampler = threading.Thread(target=sample_status, args=(svc, t0, stopped, samples), daemon=True)
        stream.start()
        sampler.start()
        try:
            time.sleep(args.before)
            print(f"squeeze: another process takes {args.grab_gib:g} GiB", flush=True)
            squeeze_at = time.time() - t0
            grabber = subprocess.Popen([python(), "-c", GRAB, str(int(args.grab_gib * GIB))], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True)  # fmt: skip
            assert grabber.stdout is not None and grabber.stdin is not None
            grabber.stdout.readline()
            held_at = time.time() - t0
            time.sleep(args.hold)
            grabber.stdin.close()
            grabber.wait(30)
            freed_at = time.time() - t0
            print("released", flush=True)
            time.sleep(args.after)
            deadline = time.monotonic() + args.after
            while (
                time.monotonic() < deadline
                and sum(1 for r in stream.records if r.get("started_at") and float(r["started_at"]) - t0 >= freed_at)
                < 4
            ):
                time.sleep(0.5)
        finally:
            if grabber is not None and grabber.poll() is None:
                grabber.kill()
            stream.stopped.set()
            stream.join(300)
            stopped.set()
            sampler.join(5)
    rows = job_rows(stream.records, t0)
    before = phase_levels(rows, 0, squeeze_at)
    during = phase_levels(rows, squeeze_at, freed_at)
    after = phase_levels(rows, freed_at, float("inf"))
    start_level = max(before, key=lambda lvl: before[lvl]) if before else None
    start_rank = LEVEL_Y.get(start_level or "", 3)
    down = first_after(rows, squeeze_at, lambda lvl: LEVEL_Y[lvl] < start_rank)
    up = first_after(rows, freed_at, lambda lvl: LEVEL_Y[lvl] >= start_rank)
    # the decision's own memory reading (result.memory_used) past the critical edge: the emergency band
    edge = float(env["QUANTIZE_MEMORY_CRITICAL"])
    squeezed = [r for r in rows if r["memory_used"] is not None and r["memory_used"] >= edge]
    lower = [r for r in squeezed if r["level"] and LEVEL_Y[r["level"]] < start_rank]
    failed = [r for r in rows if r["status"] != "succeeded"]
    rec.data.update(jobs=rows, samples=samples, squeeze_at_s=squeeze_at, held_at_s=held_at, freed_at_s=freed_at,
                    levels={"before": before, "squeeze": during, "after": after})  # fmt: skip
    checks = [
        {
            "check": "the level moves down at once (every job that read memory past the critical edge ran lower)",
            "measured": f"{len(lower)} of {len(squeezed)} such jobs lower; first lower job "
            + (f"{down['started'] - squeeze_at:.1f} s after the squeeze began" if down else "never"),
            "passed": bool(squeezed) and len(lower) == len(squeezed),
        },
        {
            "check": f"back up after the release (a job at {start_level} again)",
            "measured": f"{up['started'] - freed_at:.1f} s after the release" if up else "never",
            "passed": up is not None,
        },
        {"check": "no job failed", "measured": f"{len(failed)} of {len(rows)} failed", "passed": not failed},
    ]
    rec.data["checks"] = checks
    path = RESULTS / "squeeze.png"
    plot(rows, samples, (squeeze_at, freed_at), str(path))
    rec.data["plot"] = str(path.relative_to(RESULTS.parents[1]))
    timeline = [[f"{r['started']:.1f}" if r["started"] is not None else "-", r["level"], r["memory_used"], r["status"]]
                for r in rows]  # fmt: skip
    print("\njobs (seconds since the stream started)\n" + table(["started s", "level", "memory in use", "status"],
                                                                 timeline, 3))  # fmt: skip
    print(f"\nsqueeze from {squeeze_at:.1f} s (all {args.grab_gib:g} GiB held from {held_at:.1f} s) to "
          f"{freed_at:.1f} s; levels before {before}, during {during}, after {after}")  # fmt: skip
    print("\n" + checks_table(checks))
    print(f"chart: {path}")
    rec.save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
