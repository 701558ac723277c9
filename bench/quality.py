"""The quality benchmark: what the service delivers at each level and under a burst, with and without the gate.

    .venv/bin/python -m bench.quality            # every paragraph and document (about 20-25 minutes, 2 idle cores)
    .venv/bin/python -m bench.quality --quick    # 12 paragraphs, int4 and dynamic, one document (a few minutes)

Every job goes through the service's own path (worker.simplify.simplify_text on a real ModelLoader, the
bundled Gemma 3 270M, greedy drafts, the service's default max_tokens). Runs:
- fixed fp16 / int8 / int4 / int2: the level forced, as `force_quantization` does (no escalation);
- dynamic: the real decision engine under a burst: the machine's own memory reading, and a load of the
  jobs of the burst not yet done (the whole set submitted at once), so the level moves from int2 up to
  fp16 as the burst drains, with the engine's hysteresis;
each three ways: ungated (`quality_check` false: one draft, checked and reported), gated (the full retry
budget) and adaptive (the retry budget that skips retries where recent retries rarely passed, learning from
nothing at the start of each run, its figures in Redis). Job seconds are wall seconds of simplify_text
(checks included), each level loaded before its run. The checker's precision and recall against the hand
labels come from bench.quality_labels. Writes bench/results/quality.json; bench.report puts it in
docs/benchmarks.md.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import THREADS, Recorder, bench_parser, table, wait_for_idle_cpu
from bench.paragraphs import ALL_PARAGRAPHS, DOCUMENTS, Document, Paragraph

FIXED = ("fp16", "int8", "int4", "int2")
CONFIGS = (*FIXED, "dynamic")
MODES = ("ungated", "gated", "adaptive")
QUICK_PARAGRAPHS = ("p01", "p05", "p09", "p13", "p17", "p21", "q01", "q04", "q07", "q10", "q13", "q16")
BENCH_DB = 14
"""The Redis DB (on REDIS_URL's server) that holds the adaptive budget's figures during the run."""


@dataclass
class Burst:
    """The load of a burst submitted at once: the jobs not done yet, one of them running."""

    remaining: int = 0

    def reading(self) -> Any:
        from worker.contracts import LoadReading

        return LoadReading(queued=max(self.remaining - 1, 0), running=1 if self.remaining else 0)


def make_loader(threads: int, burst: Burst) -> Any:
    """A real loader on the bundled model: the machine's memory, the burst's load, the service's settings."""
    from worker.backends.llamacpp import LlamaCppBackend
    from worker.cache import ModelCache
    from worker.model_loader import ModelLoader
    from worker.probes import Probes, backend_capabilities, system_memory
    from worker.quantization import DynamicQuantizationManager
    from worker.registry import Registry
    from worker.settings import Settings

    settings = Settings(threads=threads, n_ctx=2048)
    caps = backend_capabilities("cpu")
    probes = Probes(device="cpu", memory=system_memory, load=burst.reading, capabilities=caps)
    manager = DynamicQuantizationManager(probes, settings)
    backend = LlamaCppBackend(settings.variants_path, n_ctx=2048, n_threads=threads)
    return ModelLoader(manager, Registry(), ModelCache(8000), backends={"gguf": backend}, settings=settings)


def labelled_outputs() -> dict[tuple[str, str], dict[str, bool]]:
    """Hand labels by (paragraph, output text): what a reader found in each labelled output."""
    from bench.quality_labels import load_labels, truth

    return {(r["pid"], r["output"]): truth(r) for r in load_labels() if r["level"] != "reference"}


def job_row(item: Paragraph, result: Any, seconds: float, labels: dict[tuple[str, str], dict[str, bool]]) -> dict:
    """What one job delivered and cost."""
    from worker.quality import adds_content

    report = result.quality
    error = report.grade_error
    label = labels.get((item.pid, result.text))
    return {
        "pid": item.pid,
        "part": "tuning" if item.pid.startswith("p") else "held_out",
        "target": item.grade_level,
        "level": result.level,
        "output_level": result.output_level,
        "verdict": report.verdict,
        "grade": report.grade,
        "grade_error": error,
        "within_1": error is not None and abs(error) <= 1,
        "within_2": error is not None and abs(error) <= 2,
        "invents": adds_content(report.invented),
        "invents_facts": bool(report.invented.facts),
        "copied": report.copied,
        "coverage": report.coverage,
        "attempts": len(result.attempts),
        "retries_skipped": result.gate.retries_skipped if result.gate else None,
        "seconds": round(seconds, 3),
        "hand_invented": label["invented"] if label else None,
        "hand_invented_facts": label["invented_facts"] if label else None,
        "reasons": report.reasons,
        "text": result.text,
    }


def share(rows: Sequence[dict], key: str) -> float | None:
    """Share of rows whose `key` is true (None for no rows)."""
    return sum(bool(r[key]) for r in rows) / len(rows) if rows else None


def p95(values: Sequence[float]) -> float | None:
    """The 95th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(math.ceil(0.95 * len(ordered)) - 1, 0)] if ordered else None


def summary(rows: list[dict]) -> dict[str, Any]:
    """The run's figures: grade fit, invented content, copy, coverage, pass rate, attempts and seconds."""
    errors = [abs(r["grade_error"]) for r in rows if r["grade_error"] is not None]
    labelled = [r for r in rows if r["hand_invented"] is not None]
    held_out = [r for r in rows if r["part"] == "held_out"]
    passed_held_out = [r for r in held_out if r["verdict"] == "pass"]
    seconds = [r["seconds"] for r in rows]
    return {
        "jobs": len(rows),
        "grade_mae": statistics.fmean(errors) if errors else None,
        "within_1": share(rows, "within_1"),
        "within_2": share(rows, "within_2"),
        "invents": share(rows, "invents"),
        "invents_facts": share(rows, "invents_facts"),
        "hand_labelled": len(labelled),
        "hand_invented": share(labelled, "hand_invented"),
        "copied": share(rows, "copied"),
        "coverage": statistics.fmean(r["coverage"] for r in rows) if rows else None,
        "pass_rate": sum(r["verdict"] == "pass" for r in rows) / len(rows) if rows else None,
        "held_out_jobs": len(held_out),
        "held_out_pass_rate": len(passed_held_out) / len(held_out) if held_out else None,
        "held_out_pass_within_2": share(passed_held_out, "within_2"),
        "held_out_pass_invents_facts": share(passed_held_out, "invents_facts"),
        "attempts": statistics.fmean(r["attempts"] for r in rows) if rows else None,
        "retries_skipped": sum(r["retries_skipped"] is not None for r in rows),
        "mean_s": statistics.fmean(seconds) if seconds else None,
        "p95_s": p95(seconds),
        "levels": {lvl: sum(r["level"] == lvl for r in rows) for lvl in FIXED},
    }


def job_for(item: Paragraph | Document, config: str, gated: bool, model: str, max_tokens: int) -> Any:
    """The job a client would send for this text in this run."""
    from worker.contracts import JobSpec

    force = config if config in FIXED else None
    return JobSpec(
        text=item.text,
        grade_level=item.grade_level,
        subject=item.subject,
        force_quantization=force,
        model=model,
        max_tokens=max_tokens,
        quality_check=gated,
    )


def fresh_budget(client: Any, settings: Any) -> Any:
    """The adaptive budget with no figures on record (this run learns from nothing)."""
    from worker.retry_stats import AdaptiveBudget

    budget = AdaptiveBudget.from_settings(client, settings)
    for level in FIXED:
        budget.stats.clear(settings.default_model, level)
    return budget


def run_config(
    loader: Any,
    burst: Burst,
    config: str,
    items: Sequence[Paragraph],
    client: Any,
    labels: dict[tuple[str, str], dict[str, bool]],
    idle: float,
) -> dict[str, Any]:
    """One level (or dynamic) three ways over the same paragraphs."""
    from worker.simplify import simplify_text

    settings = loader.settings
    out: dict[str, Any] = {}
    for mode in MODES:
        wait_for_idle_cpu(idle)
        budget = fresh_budget(client, settings) if mode == "adaptive" else None
        burst.remaining = len(items)
        rows = []
        for item in items:
            job = job_for(item, config, mode != "ungated", settings.default_model, settings.job_default_max_tokens)
            started = time.perf_counter()
            result = simplify_text(loader, job, budget=budget)
            rows.append(job_row(item, result, time.perf_counter() - started, labels))
            burst.remaining -= 1
        out[mode] = {"summary": summary(rows), "rows": rows}
        s = out[mode]["summary"]
        print(
            f"{config}/{mode}: pass {s['pass_rate']:.0%}, grade MAE {s['grade_mae']:.2f}, attempts "
            f"{s['attempts']:.2f}, mean {s['mean_s']:.2f} s, p95 {s['p95_s']:.2f} s",
            flush=True,
        )
    base = out["ungated"]["summary"]
    for mode in ("gated", "adaptive"):
        s = out[mode]["summary"]
        out[mode]["cost"] = {"mean_ratio": s["mean_s"] / base["mean_s"], "p95_ratio": s["p95_s"] / base["p95_s"]}
    return out


def run_documents(loader: Any, burst: Burst, configs: Sequence[str], docs: Sequence[Document], client: Any) -> dict:
    """Each document as one job, per config and mode: paragraphs in and out, verdicts, seconds."""
    from worker.simplify import simplify_text

    settings = loader.settings
    out: dict[str, Any] = {}
    for config in configs:
        for mode in MODES:
            budget = fresh_budget(client, settings) if mode == "adaptive" else None
            for doc in docs:
                burst.remaining = len(docs)
                job = job_for(doc, config, mode != "ungated", settings.default_model, settings.job_default_max_tokens)
                started = time.perf_counter()
                result = simplify_text(loader, job, budget=budget)
                seconds = time.perf_counter() - started
                out[f"{config}/{mode}/{doc.did}"] = {
                    "paragraphs_in": len(doc.paragraphs),
                    "paragraphs_out": len(result.text.split("\n\n")),
                    "per_paragraph_reports": len(result.paragraphs or []),
                    "verdict": result.quality.verdict,
                    "paragraph_verdicts": [p.quality.verdict for p in result.paragraphs or []],
                    "attempts": len(result.attempts),
                    "seconds": round(seconds, 2),
                }
                print(f"{config}/{mode}/{doc.did}: {out[f'{config}/{mode}/{doc.did}']}", flush=True)
    return out


def checker_scores() -> dict[str, Any]:
    """The checker's precision and recall on the held-out hand labels (bench.quality_labels)."""
    from bench.quality_labels import load_labels, part_of, scores

    rows = [r for r in load_labels() if r["level"] != "reference" and part_of(r["pid"]) == "held_out"]
    return {"rows": len(rows), "checks": scores(rows)}


def warm_levels(loader: Any, levels: Sequence[str]) -> None:
    """Load every level once (variants built if missing), so no run pays a first load."""
    from worker.contracts import JobSpec
    from worker.simplify import simplify_text

    for level in levels:
        spec = JobSpec(
            text="Warm up.",
            grade_level=5,
            force_quantization=level,
            model=loader.settings.default_model,
            max_tokens=4,
            quality_check=False,
        )
        simplify_text(loader, spec)


def print_tables(results: dict[str, Any]) -> None:
    """The summaries side by side, then the gate's cost."""
    headers = ("run", "pass", "held-out pass", "MAE", "within 2", "invents", "facts", "copy", "attempts", "mean s")
    body = []
    for config, modes in results["runs"].items():
        for mode in MODES:
            s = modes[mode]["summary"]
            body.append(
                (
                    f"{config}/{mode}",
                    s["pass_rate"],
                    s["held_out_pass_rate"],
                    s["grade_mae"],
                    s["within_2"],
                    s["invents"],
                    s["invents_facts"],
                    s["copied"],
                    s["attempts"],
                    s["mean_s"],
                )
            )
    print(table(headers, body))
    for config, modes in results["runs"].items():
        for mode in ("gated", "adaptive"):
            cost = modes[mode]["cost"]
            print(f"{config}/{mode}: {cost['mean_ratio']:.2f}x mean, {cost['p95_ratio']:.2f}x p95 of ungated")


def selected(args: Any) -> tuple[list[Paragraph], list[str], list[Document]]:
    """The paragraphs, configs and documents of this run."""
    paragraphs = list(ALL_PARAGRAPHS)
    if args.quick:
        paragraphs = [p for p in paragraphs if p.pid in QUICK_PARAGRAPHS]
    configs = args.configs or (["int4", "dynamic"] if args.quick else list(CONFIGS))
    docs = list(DOCUMENTS[:1] if args.quick else DOCUMENTS)
    return paragraphs, configs, docs


def main(argv: list[str] | None = None) -> int:
    """Run the selected configs and write the JSON."""
    parser = bench_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="12 paragraphs, int4 and dynamic, one document")
    parser.add_argument("--threads", type=int, default=THREADS, help="llama.cpp threads (1 on a crowded machine)")
    parser.add_argument("--configs", nargs="*", choices=CONFIGS, help="levels to run (default: all, or int4 dynamic)")
    args = parser.parse_args(argv)
    import redis

    from worker.settings import get_settings

    paragraphs, configs, docs = selected(args)
    recorder = Recorder("quality", argv if argv is not None else sys.argv[1:])
    client = redis.Redis.from_url(get_settings().redis_url.rsplit("/", 1)[0] + f"/{BENCH_DB}")
    burst = Burst()
    loader = make_loader(args.threads, burst)
    warm_levels(loader, FIXED)
    labels = labelled_outputs()
    recorder.data.update(
        threads=args.threads,
        quick=args.quick,
        paragraphs=[p.pid for p in paragraphs],
        documents=[d.did for d in docs],
        settings={
            k: v for k, v in loader.settings.model_dump().items() if k.startswith("quality_") or k == "part_max_chars"
        },
        checker=checker_scores(),
        runs={},
    )
    for config in configs:
        recorder.data["runs"][config] = run_config(loader, burst, config, paragraphs, client, labels, args.wait_idle)
        recorder.save(final=False)
    recorder.data["documents"] = run_documents(
        loader, burst, [c for c in configs if c in ("int4", "dynamic")], docs, client
    )
    print_tables(recorder.data)
    recorder.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())


def quality_targets(q: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """The quality targets, judged from a run: (target, measured, met)."""
    out: list[tuple[str, str, bool | None]] = []
    runs = q.get("runs", {})
    gated = [m["gated"]["summary"] for m in runs.values()]
    held = [s for s in gated if s["held_out_jobs"]]
    if held:
        jobs = sum(s["held_out_jobs"] for s in held)
        passes = sum(s["held_out_pass_rate"] * s["held_out_jobs"] for s in held)
        out.append(
            ("held-out results that pass after retries >= 50%", f"{passes / jobs:.0%} of {jobs}", passes / jobs >= 0.5)
        )
    for config, modes in runs.items():
        for mode in ("gated", "adaptive"):
            cost = modes[mode]["cost"]["mean_ratio"]
            out.append((f"{config}: {mode} mean job time <= 1.6x ungated", f"{cost:.2f}x", cost <= 1.6))
    return out


def report_section(q: dict[str, Any]) -> str:
    """The docs/benchmarks.md section: per run figures, the gate's cost, documents, the checker's scores."""
    headers = (
        "run", "jobs", "pass", "held-out pass", "grade MAE", "within 1", "within 2", "invents (checker)",
        "invents facts", "invents (hand, n)", "copy", "coverage", "attempts", "skipped", "mean s", "p95 s", "cost",
    )  # fmt: skip
    body = []
    for config, modes in q["runs"].items():
        for mode in MODES:
            s = modes[mode]["summary"]
            cost = modes[mode].get("cost")
            hand = f"{fmt_share(s['hand_invented'])} ({s['hand_labelled']})"
            ratio = f"{cost['mean_ratio']:.2f}x / {cost['p95_ratio']:.2f}x" if cost else "1x"
            body.append(
                (
                    f"{config} {mode}", s["jobs"], fmt_share(s["pass_rate"]), fmt_share(s["held_out_pass_rate"]),
                    s["grade_mae"], fmt_share(s["within_1"]), fmt_share(s["within_2"]), fmt_share(s["invents"]),
                    fmt_share(s["invents_facts"]), hand, fmt_share(s["copied"]), s["coverage"], s["attempts"],
                    s["retries_skipped"], s["mean_s"], s["p95_s"], ratio,
                )
            )  # fmt: skip
    checks = q["checker"]["checks"]
    checker = table(
        ("check", "labelled problems", "flagged", "precision", "recall"),
        [(c, v["labelled_problems"], v["flagged"], v["precision"], v["recall"]) for c, v in checks.items()],
    )
    docs = table(
        ("document run", "paragraphs in", "out", "reports", "verdict", "attempts", "seconds"),
        [
            (
                k,
                d["paragraphs_in"],
                d["paragraphs_out"],
                d["per_paragraph_reports"],
                d["verdict"],
                d["attempts"],
                d["seconds"],
            )
            for k, d in q.get("documents", {}).items()
        ],
    )
    goals = table(
        ("target", "measured", "verdict"), [(t, m, "met" if ok else "not met") for t, m, ok in quality_targets(q)]
    )
    kind = "quick run (--quick)" if q.get("quick") else "full run"
    return "\n".join(
        [
            f"A {kind}: {len(q['paragraphs'])} paragraphs ({sum(p.startswith('q') for p in q['paragraphs'])} "
            f"held out from the checker's tuning), {len(q.get('documents', {}))} document jobs, llama.cpp on "
            f"{q['threads']} threads, the service's default max_tokens; load average {q['loadavg_start'][0]} at "
            f"start, {q['loadavg_end'][0]} at end.",
            "",
            table(headers, body),
            "",
            "pass: verdict `pass`; held-out pass: on the paragraphs not used to tune the checker; grade MAE: mean "
            "|grade - target| (Flesch-Kincaid); invents: adds names, numbers or rare content words the source "
            "lacks (checker); invents facts: names or numbers (checker); hand: share of the outputs that a hand "
            "label exists for (same paragraph, same text) that the label says invent (n labelled); copy: nearly "
            "the source's wording; coverage: share of the source's sentences kept (mean); attempts: drafts per "
            "job; skipped: jobs whose retries the adaptive budget skipped; cost: mean / p95 job seconds against "
            "the ungated run of the same level. Dynamic: the real decision engine under a burst of all the "
            "paragraphs (load = jobs not yet done), so its levels run from int2 to fp16 as it drains.",
            "",
            "#### Targets",
            "",
            goals,
            "",
            "#### Documents (each one job; its paragraphs checked and joined in order)",
            "",
            docs,
            "",
            f"#### The checker against the held-out hand labels ({q['checker']['rows']} outputs, bench.quality_labels)",
            "",
            checker,
        ]
    )


def fmt_share(value: float | None) -> str:
    """0.25 -> '25%'."""
    return "-" if value is None else f"{value:.0%}"
