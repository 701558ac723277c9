"""The quality gate measured on the default model: what each strategy buys, pass rates, and what it costs.

    .venv/bin/python -m bench.quality_gate strategies   # each strategy alone, then orders, on the tuning paragraphs
    .venv/bin/python -m bench.quality_gate heldout      # gate off and on, held-out texts (q01-q18, h01-h24)
    .venv/bin/python -m bench.quality_gate chapter      # a 20-paragraph chapter as one job, gate on

Each run goes through the service's own path (worker.simplify.make_drafter and worker.gate.run on a real
ModelLoader with the default model). Memory and load readings are set, not read, so the level the decision
engine picks is the same on every run: a load of 8 jobs at low memory, where the matrix gives int4 and
escalation may go up to int8 and fp16. Greedy and seeded drafts are deterministic, so a draft asked again
(same ask, request and seed) is reused with its measured seconds: every strategy is compared on the same
drafts. Job seconds are the drafts' seconds (the meaning check included) plus the word checks'.
Writes bench/results/quality_gate_<mode>.json.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import replace
from typing import Any

from bench.common import ROOT, THREADS, Recorder, bench_parser, table
from bench.paragraphs import MORE_PARAGRAPHS, PARAGRAPHS, Paragraph

SINGLE = ("revise", "best_of", "escalate", "resimplify", "sample")
ORDERS: tuple[tuple[str, ...], ...] = (
    ("revise", "escalate", "best_of"),
    ("revise", "best_of"),
    ("escalate", "revise", "best_of"),
    ("best_of", "revise"),
)
QUEUED = 8
"""The load the readings report: the matrix's int4 at low memory."""
MAX_TOKENS = 160
HELD_OUT_FILE = ROOT / "bench" / "data" / "held_out_texts.jsonl"
CHAPTER_PARAGRAPHS = 20


def held_out_texts() -> tuple[Paragraph, ...]:
    """The second held-out set (h01-h24), written for the default model's figures and never used for tuning."""
    rows = [json.loads(line) for line in HELD_OUT_FILE.read_text().splitlines() if line.strip()]
    return tuple(Paragraph(r["pid"], r["subject"], r["grade_level"], r["text"]) for r in rows)


def make_loader(threads: int) -> Any:
    """A real loader on the default model whose probes report low memory and QUEUED waiting jobs."""
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
        load=lambda: LoadReading(queued=QUEUED, running=0),
        capabilities={"gguf": dict.fromkeys(LEVELS, True)},
    )
    settings = Settings(consecutive=1, threads=threads, quality_max_seconds=1e9)
    manager = DynamicQuantizationManager(probes, settings)
    backend = LlamaCppBackend(settings.variants_path, n_threads=threads)
    return ModelLoader(manager, Registry(), ModelCache(8000), backends={"gguf": backend}, settings=settings)


class MemoDrafter:
    """The service's drafter, with each distinct draft made once and replayed after (same ask, request, seed)."""

    def __init__(self, loader: Any, paragraph: Paragraph) -> None:
        from worker.simplify import make_drafter

        self.inner = make_drafter(loader, None, paragraph.grade_level, paragraph.subject, MAX_TOKENS)
        self.memo: dict[tuple[Any, ...], Any] = {}

    def __call__(self, ask: Any, request: Any, sampling: Any) -> Any:
        key = (ask, request, sampling)
        if key not in self.memo:
            self.memo[key] = self.inner(ask, request, sampling)
        return self.memo[key]


def gate_once(paragraph: Paragraph, drafter: MemoDrafter, settings: Any, levels: Any) -> dict[str, Any]:
    """One gated (or ungated) simplification and what it cost."""
    from worker import gate
    from worker.policy import Request
    from worker.quality import check

    checks: list[float] = []

    def timed_check(source: str, output: str, grade: int, meaning: float | None) -> Any:
        started = time.perf_counter()
        report = check(source, output, grade, meaning)
        checks.append(time.perf_counter() - started)
        return report

    result = gate.run(paragraph.text, paragraph.grade_level, drafter, Request(), settings, levels, timed_check)
    report = result.report
    return {
        "pid": paragraph.pid,
        "target": paragraph.grade_level,
        "text": result.draft.text,
        "level": result.draft.level,
        "verdict": report.verdict,
        "grade": report.grade,
        "grade_error": report.grade_error,
        "within_1_5": report.grade_error is not None and abs(report.grade_error) <= 1.5,
        "invented_facts": report.invented.facts,
        "meaning_score": report.meaning_score,
        "reasons": report.reasons,
        "attempts": [a.model_dump() for a in result.attempts],
        "seconds": sum(d.seconds for d in result.drafts) + sum(checks),
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Pass rate, grade fit and invented facts among passes, grade MAE over all, attempts and seconds."""
    passed = [r for r in rows if r["verdict"] == "pass"]
    seconds = [r["seconds"] for r in rows]
    errors = [abs(r["grade_error"]) for r in rows if r["grade_error"] is not None]
    return {
        "jobs": len(rows),
        "pass_rate": len(passed) / len(rows) if rows else None,
        "pass_within_1_5": sum(r["within_1_5"] for r in passed) / len(passed) if passed else None,
        "pass_invented_facts": sum(bool(r["invented_facts"]) for r in passed) / len(passed) if passed else None,
        "grade_mae": statistics.mean(errors) if errors else None,
        "mean_attempts": statistics.mean(len(r["attempts"]) for r in rows) if rows else None,
        "mean_seconds": statistics.mean(seconds) if seconds else None,
        "p95_seconds": sorted(seconds)[max(int(len(seconds) * 0.95) - 1, 0)] if seconds else None,
    }


def run_orders(paragraphs: tuple[Paragraph, ...], threads: int, max_attempts: int) -> dict[str, Any]:
    """Ungated, each strategy alone, then whole orders, on the same paragraphs and drafts."""
    from worker.gate import GateSettings

    loader = make_loader(threads)
    levels = loader.supported_levels(loader.registry.get(None))
    drafters = {p.pid: MemoDrafter(loader, p) for p in paragraphs}
    base = GateSettings.from_settings(loader.settings)
    base = replace(base, max_attempts=max_attempts, max_seconds=1e9)
    runs: list[tuple[str, Any]] = [("ungated", replace(base, enabled=False))]
    runs += [(s, replace(base, order=(s,))) for s in SINGLE]
    runs += [(",".join(o), replace(base, order=o)) for o in ORDERS]
    out: dict[str, Any] = {}
    for name, settings in runs:
        rows = [gate_once(p, drafters[p.pid], settings, levels) for p in paragraphs]
        out[name] = {"summary": summary(rows), "rows": rows}
        print(f"{name}: {summary(rows)}", flush=True)
    ungated = out["ungated"]["summary"]
    for value in out.values():
        s = value["summary"]
        s["pass_gain"] = s["pass_rate"] - ungated["pass_rate"]
        s["cost_ratio"] = s["mean_seconds"] / ungated["mean_seconds"]
    return out


def run_heldout(paragraphs: tuple[Paragraph, ...], threads: int) -> dict[str, Any]:
    """Gate off and on (the default settings, no seconds budget) on the held-out texts."""
    from worker.gate import GateSettings

    loader = make_loader(threads)
    levels = loader.supported_levels(loader.registry.get(None))
    drafters = {p.pid: MemoDrafter(loader, p) for p in paragraphs}
    settings = replace(GateSettings.from_settings(loader.settings), max_seconds=1e9)
    out: dict[str, Any] = {}
    for gated in (False, True):
        rows = [gate_once(p, drafters[p.pid], replace(settings, enabled=gated), levels) for p in paragraphs]
        key = "gated" if gated else "ungated"
        out[key] = {"summary": summary(rows), "rows": rows}
        print(f"{key}: {summary(rows)}", flush=True)
    on, off = out["gated"]["summary"], out["ungated"]["summary"]
    out["cost_ratio"] = on["mean_seconds"] / off["mean_seconds"] if off["mean_seconds"] else None
    return out


def run_chapter(paragraphs: tuple[Paragraph, ...], threads: int) -> dict[str, Any]:
    """A chapter of CHAPTER_PARAGRAPHS held-out paragraphs as one job with the gate on: every paragraph back, each
    with its report."""
    from worker.contracts import JobSpec
    from worker.simplify import simplify_text

    loader = make_loader(threads)
    chosen = paragraphs[:CHAPTER_PARAGRAPHS]
    text = "\n\n".join(p.text for p in chosen)
    job = JobSpec(text=text, grade_level=6, subject="General", max_tokens=MAX_TOKENS)
    started = time.perf_counter()
    result = simplify_text(loader, job)
    seconds = time.perf_counter() - started
    assert result.quality is not None
    out = {
        "paragraphs_in": len(chosen),
        "paragraphs_out": len(result.text.split("\n\n")),
        "reports": len(result.paragraphs or []),
        "verdict": result.quality.verdict,
        "paragraph_verdicts": [p.quality.verdict for p in result.paragraphs or []],
        "drafts": len(result.attempts),
        "seconds": seconds,
        "text": result.text,
    }
    print(
        f"chapter: {out['paragraphs_out']}/{out['paragraphs_in']} paragraphs, {out['reports']} reports, "
        f"{sum(v == 'pass' for v in out['paragraph_verdicts'])} pass, {out['drafts']} drafts, {seconds:.0f} s",
        flush=True,
    )
    return {"chapter": out}


def print_table(results: dict[str, Any]) -> None:
    """The summaries side by side."""
    headers = ("run", "jobs", "pass", "pass within 1.5", "pass invents", "grade MAE", "attempts", "mean s", "cost")
    body = []
    for name, value in results.items():
        if isinstance(value, dict) and "summary" in value:
            s = value["summary"]
            body.append(
                (
                    name,
                    s["jobs"],
                    s["pass_rate"],
                    s["pass_within_1_5"],
                    s["pass_invented_facts"],
                    s["grade_mae"],
                    s["mean_attempts"],
                    s["mean_seconds"],
                    s.get("cost_ratio"),
                )
            )
    print(table(headers, body))
    if results.get("cost_ratio"):
        print(f"gate cost: {results['cost_ratio']:.2f}x the ungated mean job time")


def main(argv: list[str] | None = None) -> int:
    """Run one mode and write its JSON."""
    parser = bench_parser(__doc__)
    parser.add_argument("mode", choices=("strategies", "heldout", "chapter"))
    parser.add_argument("--threads", type=int, default=THREADS, help="llama.cpp threads (1 on a crowded machine)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N paragraphs (a quick run)")
    parser.add_argument("--max-attempts", type=int, default=3, help="drafts per paragraph in the strategies mode")
    args = parser.parse_args(argv)
    recorder = Recorder(f"quality_gate_{args.mode}", argv if argv is not None else sys.argv[1:])
    paragraphs = PARAGRAPHS if args.mode == "strategies" else MORE_PARAGRAPHS + held_out_texts()
    if args.mode == "chapter":
        paragraphs = held_out_texts()
    if args.limit:
        paragraphs = paragraphs[: args.limit]
    recorder.data["paragraphs"] = [p.pid for p in paragraphs]
    recorder.data["threads"] = args.threads
    if args.mode == "strategies":
        results = run_orders(paragraphs, args.threads, args.max_attempts)
    elif args.mode == "chapter":
        results = run_chapter(paragraphs, args.threads)
    else:
        results = run_heldout(paragraphs, args.threads)
    recorder.data["results"] = results
    print_table(results)
    recorder.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
