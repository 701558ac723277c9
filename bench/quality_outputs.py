"""Real first drafts of a model for hand labelling: every labelled paragraph at every level, greedy.

    .venv/bin/python -m bench.quality_outputs                  # the default model -> bench/data/outputs/<model>.jsonl
    .venv/bin/python -m bench.quality_outputs --model gemma-3-270m
    .venv/bin/python -m bench.quality_outputs --reclean        # re-clean every row's raw text, generate nothing

Each row is what the service returns as the first draft for the paragraph at that level (the service's prompt,
stop strings and output cleaning, the default max_tokens), with its meaning-check score from the same loaded
model. The rows are the raw material of bench/data/labels/<model>.jsonl. A stopped run keeps what it wrote and
goes on where it stopped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.common import LEVEL_ORDER, ROOT, THREADS, bench_parser
from bench.paragraphs import ALL_PARAGRAPHS, Paragraph

OUTPUTS_DIR = ROOT / "bench" / "data" / "outputs"


def outputs_file(model: str) -> Path:
    """Where a model's first drafts are kept."""
    return OUTPUTS_DIR / f"{model}.jsonl"


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows already written (none when the file does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def reclean(path: Path) -> int:
    """Apply the service's current output cleaning to every row's raw completion again."""
    from worker.simplify import clean_output

    rows = read_rows(path)
    for row in rows:
        row["output"] = clean_output(str(row["raw"]), str(row["finish_reason"]))
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"re-cleaned {len(rows)} rows in {path}")
    return 0


def interleaved(paragraphs: tuple[Paragraph, ...]) -> list[Paragraph]:
    """The first and the second set taken in turn, so a partial run covers both."""
    first = [p for p in paragraphs if p.pid.startswith("p")]
    second = [p for p in paragraphs if not p.pid.startswith("p")]
    out: list[Paragraph] = []
    for i in range(max(len(first), len(second))):
        out += first[i : i + 1] + second[i : i + 1]
    return out


def meaning_scores(model: Any, p: Paragraph, output: str) -> dict[str, Any]:
    """The service's meaning score for the draft (the judge continues the rewrite's conversation) and its seconds."""
    import time

    from worker.meaning import meaning_score

    started = time.perf_counter()
    score = meaning_score(model, p.text, p.grade_level, p.subject, output)
    return {"meaning": score, "meaning_seconds": round(time.perf_counter() - started, 3)}


def main(argv: list[str] | None = None) -> int:
    """Generate every paragraph at every level (one level loaded at a time) and write one JSON line per output."""
    from worker.settings import DEFAULT_MODEL

    parser = bench_parser(__doc__)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--levels", nargs="*", default=list(LEVEL_ORDER))
    parser.add_argument("--threads", type=int, default=THREADS, help="llama.cpp threads (1 on a crowded machine)")
    parser.add_argument("--reclean", action="store_true", help="re-clean every row's raw text, generate nothing")
    args = parser.parse_args(argv)
    out = outputs_file(args.model)
    if args.reclean:
        return reclean(out)
    from worker.backends.llamacpp import LlamaCppBackend
    from worker.registry import Registry
    from worker.settings import get_settings
    from worker.simplify import generate_once

    settings = get_settings()
    spec = Registry().get(args.model)
    backend = LlamaCppBackend(settings.variants_path, n_threads=args.threads)
    done = {(r["pid"], r["level"]) for r in read_rows(out)}
    out.parent.mkdir(parents=True, exist_ok=True)
    for level in args.levels:
        model = backend.load(spec, level)
        try:
            for p in interleaved(ALL_PARAGRAPHS):
                if (p.pid, level) in done:
                    continue
                text, gen = generate_once(model, p.text, p.grade_level, p.subject, settings.job_default_max_tokens)
                row = {
                    "pid": p.pid,
                    "level": level,
                    "grade_level": p.grade_level,
                    "output": text,
                    "raw": gen.text,
                    "finish_reason": gen.finish_reason,
                    "seconds": round(gen.seconds, 3),
                    "tokens_out": gen.tokens_out,
                }
                row |= meaning_scores(model, p, text)
                with out.open("a") as sink:  # one line at a time: a stopped run keeps what it made
                    sink.write(json.dumps(row, ensure_ascii=False) + "\n")
                print(f"{level} {p.pid} {gen.seconds:.2f}s {text[:90]!r}", flush=True)
        finally:
            model.close()
    print(f"{len(read_rows(out))} outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
