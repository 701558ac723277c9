"""The quality gate measured on the bundled model: which retry order works best, pass rates, and what it costs.

    .venv/bin/python -m bench.quality_gate order      # retry orders on the tuning paragraphs (p01-p24)
    .venv/bin/python -m bench.quality_gate heldout    # gate on/off on the held-out paragraphs (q01-q18)
    .venv/bin/python -m bench.quality_gate documents  # documents as one job against paragraph by paragraph

Each run goes through the service's own path (worker.simplify.make_drafter and worker.gate.run on a real
ModelLoader). Memory and load readings are set, not read, so the level the decision engine picks is the
same on every run: "burst" is a queue of 20 jobs at low memory (the matrix says int2, escalation allowed
up to fp16); "fixed-int4" and "forced-int2" force a level (no escalation). Greedy and seeded drafts are
deterministic, so a draft asked again (same text, request and seed) is reused with its measured seconds:
every order is compared on the same drafts. Job seconds are the attempts' seconds plus the checks'.
Writes bench/results/quality_gate_<mode>.json.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

from bench.common import THREADS, Recorder, bench_parser, table
from bench.paragraphs import MORE_PARAGRAPHS, PARAGRAPHS, Paragraph

ORDERS: tuple[tuple[str, ...], ...] = (
    ("escalate", "resimplify", "sample"),
    ("resimplify", "escalate", "sample"),
    ("escalate", "sample", "resimplify"),
    ("sample", "escalate", "resimplify"),
)
SCENARIOS: dict[str, dict[str, Any]] = {
    "burst": {"queued": 20, "force": None},
    "fixed-int4": {"queued": 0, "force": "int4"},
    "forced-int2": {"queued": 0, "force": "int2"},
}
MAX_TOKENS = 160


def make_loader(queued: int, threads: int) -> Any:
    """A real loader on the bundled model whose probes report low memory and `queued` waiting jobs."""
    from worker.backends.llamacpp import LlamaCppBackend
    from worker.cache import ModelCache
    from worker.contracts import GIB, LoadReading, MemoryReading
    from worker.model_loader import ModelLoader
    from worker.policy import LEVELS
    from worker.probes import Probes
    from worker.quantization import DynamicQuantizationManager
    from worker.registry import Registry
    from worker.settings import Settings

    total = 16 * GIB
    probes = Probes(
        device="cpu",
        memory=lambda: MemoryReading(
            pool="bench", total_bytes=total, available_bytes=int(total * 0.9), process_bytes=0
        ),
        load=lambda: LoadReading(queued=queued, running=0),
        capabilities={"gguf": dict.fromkeys(LEVELS, True)},
    )
    settings = Settings(consecutive=1, threads=threads, n_ctx=2048, quality_max_seconds=1e9)
    manager = DynamicQuantizationManager(probes, settings)
    backend = LlamaCppBackend(settings.variants_path, n_ctx=2048, n_threads=threads)
    return ModelLoader(manager, Registry(), ModelCache(8000), backends={"gguf": backend}, settings=settings)


class MemoDrafter:
    """The service's drafter, with each distinct draft made once and replayed after (same text, request, seed)."""

    def __init__(self, loader: Any, paragraph: Paragraph) -> None:
        from worker.simplify import make_drafter

        self.inner = make_drafter(loader, None, paragraph.grade_level, paragraph.subject, MAX_TOKENS)
        self.memo: dict[tuple[Any, ...], Any] = {}

    def __call__(self, text: str, request: Any, sampling: Any) -> Any:
        key = (text, request, sampling)
        if key not in self.memo:
            self.memo[key] = self.inner(text, request, sampling)
        return self.memo[key]


def gate_once(paragraph: Paragraph, drafter: MemoDrafter, request: Any, settings: Any, levels: Any) -> dict[str, Any]:
    """One gated (or ungated) simplification and what it cost."""
    from worker import gate
    from worker.quality import check

    checks: list[float] = []

    def timed_check(source: str, output: str, grade: int) -> Any:
        started = time.perf_counter()
        report = check(source, output, grade)
        checks.append(time.perf_counter() - started)
        return report

    result = gate.run(paragraph.text, paragraph.grade_level, drafter, request, settings, levels, timed_check)
    report = result.report
    return {
        "pid": paragraph.pid,
        "target": paragraph.grade_level,
        "text": result.draft.text,
        "level": result.draft.level,
        "verdict": report.verdict,
        "grade": report.grade,
        "grade_error": report.grade_error,
        "within_2": report.grade_error is not None and abs(report.grade_error) <= 2,
        "invented_facts": report.invented.facts,
        "reasons": report.reasons,
        "attempts": [a.model_dump() for a in result.attempts],
        "seconds": sum(a.seconds for a in result.attempts) + sum(checks),
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Pass rate, grade fit among passes, invented facts among passes, attempts and seconds."""
    passed = [r for r in rows if r["verdict"] == "pass"]
    seconds = [r["seconds"] for r in rows]
    errors = [abs(r["grade_error"]) for r in rows if r["grade_error"] is not None]
    return {
        "jobs": len(rows),
        "pass_rate": len(passed) / len(rows) if rows else None,
        "pass_within_2": sum(r["within_2"] for r in passed) / len(passed) if passed else None,
        "pass_invented_facts": sum(bool(r["invented_facts"]) for r in passed) / len(passed) if passed else None,
        "grade_mae": statistics.mean(errors) if errors else None,
        "mean_attempts": statistics.mean(len(r["attempts"]) for r in rows) if rows else None,
        "mean_seconds": statistics.mean(seconds) if seconds else None,
        "p95_seconds": sorted(seconds)[max(int(len(seconds) * 0.95) - 1, 0)] if seconds else None,
    }


def run_order(paragraphs: tuple[Paragraph, ...], threads: int) -> dict[str, Any]:
    """Every retry order on the same paragraphs in the burst scenario (drafts at int2, escalation allowed)."""
    from worker.gate import GateSettings
    from worker.policy import Request

    loader = make_loader(SCENARIOS["burst"]["queued"], threads)
    levels = loader.supported_levels(loader.registry.get(None))
    drafters = {p.pid: MemoDrafter(loader, p) for p in paragraphs}
    out: dict[str, Any] = {}
    for order in ORDERS:
        settings = GateSettings(enabled=True, max_attempts=3, max_seconds=1e9, order=order, temperature=0.7)
        rows = [gate_once(p, drafters[p.pid], Request(), settings, levels) for p in paragraphs]
        out[",".join(order)] = {"summary": summary(rows), "rows": rows}
        print(f"{','.join(order)}: {summary(rows)}", flush=True)
    return out


def run_heldout(paragraphs: tuple[Paragraph, ...], threads: int, scenarios: list[str]) -> dict[str, Any]:
    """Gate off and on (default settings, no time budget) per scenario on the held-out paragraphs."""
    from dataclasses import replace

    from worker.gate import GateSettings
    from worker.policy import Request

    out: dict[str, Any] = {}
    for name in scenarios:
        scenario = SCENARIOS[name]
        loader = make_loader(scenario["queued"], threads)
        levels = loader.supported_levels(loader.registry.get(None))
        request = Request(force_quantization=scenario["force"])
        drafters = {p.pid: MemoDrafter(loader, p) for p in paragraphs}
        settings = GateSettings.from_settings(loader.settings)
        for gated in (False, True):
            chosen = replace(settings, enabled=gated)
            rows = [gate_once(p, drafters[p.pid], request, chosen, levels) for p in paragraphs]
            key = f"{name}/{'gated' if gated else 'ungated'}"
            out[key] = {"summary": summary(rows), "rows": rows}
            print(f"{key}: {summary(rows)}", flush=True)
        on, off = out[f"{name}/gated"]["summary"], out[f"{name}/ungated"]["summary"]
        out[f"{name}/cost_ratio"] = on["mean_seconds"] / off["mean_seconds"] if off["mean_seconds"] else None
    return out


def run_documents(threads: int) -> dict[str, Any]:
    """Each document as one job (its paragraphs in turn) against its paragraphs as separate calls, gate off and on."""
    from bench.paragraphs import DOCUMENTS
    from worker.contracts import JobSpec
    from worker.simplify import simplify_text

    loader = make_loader(0, threads)

    def job(text: str, grade: int, subject: str, gated: bool) -> JobSpec:
        return JobSpec(
            text=text,
            grade_level=grade,
            subject=subject,
            force_quantization="int4",
            model=loader.settings.default_model,
            max_tokens=MAX_TOKENS,
            quality_check=gated,
        )

    simplify_text(loader, job("Warm up.", 5, "Science", False))
    out: dict[str, Any] = {}
    for doc in DOCUMENTS:
        for gated in (False, True):
            started = time.perf_counter()
            whole = simplify_text(loader, job(doc.text, doc.grade_level, doc.subject, gated))
            one_job = time.perf_counter() - started
            started = time.perf_counter()
            for paragraph in doc.paragraphs:
                simplify_text(loader, job(paragraph, doc.grade_level, doc.subject, gated))
            separate = time.perf_counter() - started
            key = f"{doc.did}/{'gated' if gated else 'ungated'}"
            assert whole.quality is not None
            out[key] = {
                "paragraphs_in": len(doc.paragraphs),
                "paragraphs_out": len(whole.text.split("\n\n")),
                "verdict": whole.quality.verdict,
                "paragraph_verdicts": [p.quality.verdict for p in whole.paragraphs or []],
                "attempts": len(whole.attempts),
                "one_job_seconds": one_job,
                "separate_calls_seconds": separate,
                "text": whole.text,
            }
            print(
                f"{key}: {out[key]['paragraphs_out']}/{out[key]['paragraphs_in']} paragraphs, one job {one_job:.2f} s, "
                f"separately {separate:.2f} s, verdict {out[key]['verdict']}",
                flush=True,
            )
    return out


def print_table(results: dict[str, Any]) -> None:
    """The summaries side by side."""
    headers = ("run", "jobs", "pass", "pass within 2", "pass invents", "grade MAE", "attempts", "mean s", "p95 s")
    body = []
    for name, value in results.items():
        if isinstance(value, dict) and "summary" in value:
            s = value["summary"]
            body.append(
                (
                    name,
                    s["jobs"],
                    s["pass_rate"],
                    s["pass_within_2"],
                    s["pass_invented_facts"],
                    s["grade_mae"],
                    s["mean_attempts"],
                    s["mean_seconds"],
                    s["p95_seconds"],
                )
            )
    print(table(headers, body))
    for name, value in results.items():
        if name.endswith("cost_ratio"):
            print(f"{name}: {value:.2f}x" if value else f"{name}: -")


def main(argv: list[str] | None = None) -> int:
    """Run one mode and write its JSON."""
    parser = bench_parser(__doc__)
    parser.add_argument("mode", choices=("order", "heldout", "documents"))
    parser.add_argument("--threads", type=int, default=THREADS, help="llama.cpp threads (1 on a crowded machine)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N paragraphs (a quick run)")
    parser.add_argument("--scenarios", nargs="*", default=list(SCENARIOS), choices=list(SCENARIOS))
    args = parser.parse_args(argv)
    recorder = Recorder(f"quality_gate_{args.mode}", argv if argv is not None else sys.argv[1:])
    paragraphs = PARAGRAPHS if args.mode == "order" else MORE_PARAGRAPHS
    if args.limit:
        paragraphs = paragraphs[: args.limit]
    recorder.data["paragraphs"] = [p.pid for p in paragraphs]
    recorder.data["threads"] = args.threads
    if args.mode == "order":
        results = run_order(paragraphs, args.threads)
    elif args.mode == "documents":
        results = run_documents(args.threads)
    else:
        results = run_heldout(paragraphs, args.threads, args.scenarios)
    recorder.data["results"] = results
    print_table(results)
    recorder.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
