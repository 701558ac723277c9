"""The quality checker against hand labels: precision and recall of each check, on the tuning and held-out parts.

    .venv/bin/python -m bench.quality_labels           # prints the tables, writes bench/results/quality_labels.json
    .venv/bin/python -m bench.quality_labels --tune    # also searches the thresholds on the tuning part only

bench/data/quality_labels.jsonl holds real outputs of the bundled model (bench/quality_outputs.py: every
benchmark paragraph at every level, greedy, as the service returns them), each read and labelled by hand:
- invented: the output states something the source does not (a number, a name, a claim or topic of its
  own); `invented_terms` lists the offending words;
- copy: the output is mostly the source's own wording (a sentence or more verbatim), nothing simplified;
- grade_fit: a reader of the target grade can read it: no more than 2 grades harder than the target and
  not more than 3 below it;
- coverage_ok: it keeps at least about half of the source's main points.
Rows with level "reference" are rewrites written by hand for the target grade (good simplifications, so the
tuning sees both classes: the model's own outputs are nearly all faulty). The labels split by paragraph:
the first set (p01-p24) tunes the thresholds, the second (q01-q18, written later, targets 3-10) is held out;
hand-written rewrites are scored apart from the model outputs. A check "flags" when it finds a problem;
precision is the share of its flags that the labels confirm, recall the share of labelled problems it flags.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import LEVEL_ORDER as LEVELS
from bench.common import ROOT, Recorder, table
from bench.paragraphs import paragraph

LABELS_FILE = ROOT / "bench" / "data" / "quality_labels.jsonl"
CHECKS = ("invented", "invented_facts", "copy", "grade", "coverage", "verdict")
GRID: dict[str, tuple[Any, ...]] = {
    "COMMON_ZIPF": (4.0, 4.5, 5.0, 5.5),
    "EASY_SHORT_ZIPF": (2.0, 2.5, 3.0, 3.5, 99.0),
    "INVENTED_WORDS_MIN": (1, 2, 3),
    "COPY_OVERLAP": (0.5, 0.6, 0.75, 0.9),
    "COVERAGE_MIN": (0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8),
    "COVERAGE_TERMS_PER_SENTENCE": (2, 3, 4),
    "GRADE_TOLERANCE": (1.0, 2.0, 3.0),
    "GRADE_TOLERANCE_BELOW": (3.0, 4.0, 6.0, 99.0),
    "RARE_SHARE_AT_GRADE_3": (0.02, 0.04, 0.06, 0.08, 0.10),
}
"""Thresholds searched with --tune, one check at a time, on the tuning part only."""
TUNED_BY_CHECK = {
    "invented": ("COMMON_ZIPF", "EASY_SHORT_ZIPF", "INVENTED_WORDS_MIN"),
    "copy": ("COPY_OVERLAP",),
    "coverage": ("COVERAGE_MIN", "COVERAGE_TERMS_PER_SENTENCE"),
    "grade": ("GRADE_TOLERANCE", "GRADE_TOLERANCE_BELOW", "RARE_SHARE_AT_GRADE_3"),
}


def load_labels(path: Path = LABELS_FILE) -> list[dict[str, Any]]:
    """The labelled rows."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def part_of(pid: str) -> str:
    """Which part a paragraph's rows belong to: tuning (the first set) or held_out (the second)."""
    return "tuning" if pid.startswith("p") else "held_out"


def is_fact(term: str) -> bool:
    """A labelled invented term that is a number or a name."""
    return any(c.isdigit() for c in term) or term[:1].isupper()


def truth(row: dict[str, Any]) -> dict[str, bool]:
    """Which problems the hand labels say the output has."""
    labels = row["labels"]
    truths = {
        "invented": labels["invented"],
        "invented_facts": labels["invented"] and any(is_fact(t) for t in labels["invented_terms"]),
        "copy": labels["copy"],
        "grade": not labels["grade_fit"],
        "coverage": not labels["coverage_ok"],
    }
    truths["verdict"] = any(truths[k] for k in ("invented", "copy", "grade", "coverage"))
    return truths


def flags(row: dict[str, Any]) -> dict[str, bool]:
    """Which problems the checker finds in the row's output."""
    from worker.quality import adds_content, check

    report = check(paragraph(row["pid"]).text, row["output"], row["grade_level"])
    return {
        "invented": adds_content(report.invented),
        "invented_facts": bool(report.invented.facts),
        "copy": report.copied,
        "grade": not (report.grade_ok and report.vocabulary_ok),
        "coverage": not report.coverage_ok,
        "verdict": report.verdict == "needs_review",
    }


def scores(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per check: counts, precision, recall and F1 of the checker's flags against the labels."""
    pairs = [(truth(r), flags(r)) for r in rows]
    out: dict[str, dict[str, Any]] = {}
    for check in CHECKS:
        tp = sum(t[check] and f[check] for t, f in pairs)
        fp = sum(f[check] and not t[check] for t, f in pairs)
        fn = sum(t[check] and not f[check] for t, f in pairs)
        precision = tp / (tp + fp) if tp + fp else None
        recall = tp / (tp + fn) if tp + fn else None
        f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
        out[check] = {
            "rows": len(pairs),
            "labelled_problems": tp + fn,
            "flagged": tp + fp,
            "true_positives": tp,
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "agreement": sum(t[check] == f[check] for t, f in pairs) / len(pairs) if pairs else None,
        }
    return out


@contextmanager
def thresholds(values: dict[str, Any]) -> Iterator[None]:
    """Set quality.py's thresholds for the block, then put them back."""
    from worker import quality

    saved = {name: getattr(quality, name) for name in values}
    for name, value in values.items():
        setattr(quality, name, value)
    quality.zipf.cache_clear()
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(quality, name, value)


def tune(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For each check, the thresholds with the best F1 on the rows given (the tuning part); ties go to the
    setting with more agreement, then to the one that flags fewer outputs."""
    best: dict[str, dict[str, Any]] = {}
    for check, names in TUNED_BY_CHECK.items():
        results = []
        for combo in itertools.product(*(GRID[n] for n in names)):
            values = dict(zip(names, combo, strict=True))
            with thresholds(values):
                s = scores(rows)[check]
            results.append((s["f1"], s["agreement"] or 0.0, -s["flagged"], values, s))
        f1, _, _, values, s = max(results, key=lambda r: r[:3])  # ties: the setting that flags fewer outputs
        best[check] = {"thresholds": values, "f1": f1, "precision": s["precision"], "recall": s["recall"]}
    return best


def print_scores(name: str, result: dict[str, dict[str, Any]]) -> None:
    """One table of a part's scores."""
    headers = ("check", "rows", "labelled", "flagged", "precision", "recall", "F1", "agreement")
    body = [
        (c, s["rows"], s["labelled_problems"], s["flagged"], s["precision"], s["recall"], s["f1"], s["agreement"])
        for c, s in result.items()
    ]
    print(f"\n{name}\n{table(headers, body)}")


def main(argv: list[str] | None = None) -> int:
    """Score the checker on both parts (and tune on the first with --tune); write the JSON result."""
    args = sys.argv[1:] if argv is None else argv
    rows = load_labels()
    parts: dict[str, list[dict[str, Any]]] = {"tuning": [], "held_out": []}
    for row in rows:
        parts[part_of(row["pid"])].append(row)
    run = Recorder("quality_labels", args)
    outputs = [r for r in rows if r["level"] != "reference"]
    run.data["rows"] = {k: len(v) for k, v in parts.items()}
    run.data["paragraphs"] = {k: sorted({r["pid"] for r in v}) for k, v in parts.items()}
    run.data["levels"] = {lvl: sum(r["level"] == lvl for r in rows) for lvl in (*LEVELS, "reference")}
    run.data["labelled_problem_rate"] = sum(truth(r)["verdict"] for r in outputs) / len(outputs)
    if "--tune" in args:
        run.data["tuned"] = tune(parts["tuning"])
        print(json.dumps(run.data["tuned"], indent=2))
    for name, part_rows in parts.items():
        model_rows = [r for r in part_rows if r["level"] != "reference"]
        references = [r for r in part_rows if r["level"] == "reference"]
        result = scores(model_rows)
        passed = [r["pid"] for r in references if not flags(r)["verdict"]]
        int2_facts = [r for r in model_rows if r["level"] == "int2" and truth(r)["invented_facts"]]
        int2_passed = [r["pid"] for r in int2_facts if not flags(r)["verdict"]]
        run.data[name] = {
            "outputs": result,
            "references": len(references),
            "references_passed": passed,
            "int2_inventing_facts": len(int2_facts),
            "int2_inventing_facts_passed": int2_passed,
        }
        n_par = len({r["pid"] for r in model_rows})
        print_scores(f"{name}: {len(model_rows)} model outputs of {n_par} paragraphs", result)
        print(f"{name}: {len(passed)} of {len(references)} hand-written rewrites pass ({', '.join(passed) or 'none'})")
        print(f"{name}: {len(int2_passed)} of {len(int2_facts)} int2 outputs that invent names or numbers pass")
    run.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
