"""Real outputs of the bundled model for hand labelling: every benchmark paragraph at every level, greedy.

    .venv/bin/python -m bench.quality_outputs            # writes bench/data/quality_outputs.jsonl

Each row is what the service returns for the paragraph at that level (the service's prompt, stop strings
and output cleaning, the default max_tokens). The rows are the raw material of bench/data/quality_labels.jsonl.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.common import LEVEL_ORDER, ROOT, THREADS, bench_parser, bundled_source
from bench.paragraphs import ALL_PARAGRAPHS, Paragraph

OUTPUTS_FILE = ROOT / "bench" / "data" / "quality_outputs.jsonl"


def read_rows(path: Path) -> list[dict[str, object]]:
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


def main(argv: list[str] | None = None) -> int:
    """Generate every paragraph at every level and write one JSON line per output."""
    parser = bench_parser(__doc__)
    parser.add_argument("--out", type=Path, default=OUTPUTS_FILE)
    parser.add_argument("--levels", nargs="*", default=list(LEVEL_ORDER))
    parser.add_argument("--threads", type=int, default=THREADS, help="llama.cpp threads (1 on a crowded machine)")
    parser.add_argument("--reclean", action="store_true", help="re-clean every row's raw text, generate nothing")
    args = parser.parse_args(argv)
    if args.reclean:
        return reclean(args.out)
    from worker.backends.llamacpp import LlamaCppBackend
    from worker.registry import BUNDLED_NAME, BUNDLED_PARAMS_B, ModelSpec
    from worker.settings import get_settings
    from worker.simplify import generate_once

    settings = get_settings()
    spec = ModelSpec(BUNDLED_NAME, BUNDLED_PARAMS_B, bundled_source(), None, bundled=True)
    backend = LlamaCppBackend(settings.variants_path, n_threads=args.threads)
    done = {(r["pid"], r["level"]) for r in read_rows(args.out)}
    models = {level: backend.load(spec, level) for level in args.levels}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        for p in interleaved(ALL_PARAGRAPHS):
            for level, model in models.items():
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
                }
                with args.out.open("a") as sink:  # one line at a time: a stopped run keeps what it made
                    sink.write(json.dumps(row, ensure_ascii=False) + "\n")
                print(f"{level} {p.pid} {gen.seconds:.2f}s {text[:90]!r}", flush=True)
    finally:
        for model in models.values():
            model.close()
    print(f"{len(read_rows(args.out))} outputs in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
