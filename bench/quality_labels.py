"""The quality checker against hand labels: precision and recall of each check, on the tuning and held-out parts.

    .venv/bin/python -m bench.quality_labels                        # the default model's labels
    .venv/bin/python -m bench.quality_labels --tune                 # also searches thresholds on the tuning part
    .venv/bin/python -m bench.quality_labels --model gemma-3-270m   # the small model's (older) labels
    .venv/bin/python -m bench.quality_labels --labels reviews.jsonl # reviewers' verdicts (dynaquant labels export)

bench/data/labels/<model>.jsonl holds real first drafts of the model (bench/quality_outputs.py: every
benchmark paragraph at every level, greedy, as the service returns them), each read and labelled by hand as
bench/data/labels/RUBRIC.md says. The meaning check's score of each draft comes from the outputs file
(bench/data/outputs/<model>.jsonl), measured on the same loaded model as the service does. The labels split by
paragraph: the first set (p01-p24) tunes the thresholds, the second (q01-q18, written later, targets 3-10) is
held out. A check "flags" when it finds a problem; precision is the share of its flags that the labels confirm,
recall the share of labelled problems it flags. The figure that matters is the verdict's pass precision: of
the drafts the checker passes, the share a teacher would accept as they are (`teacher_accept`).
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
from bench.common import ROOT, Recorder, bench_parser, table
from bench.paragraphs import paragraph

LABELS_DIR = ROOT / "bench" / "data" / "labels"
CHECKS = ("invented", "invented_facts", "copy", "grade", "coverage", "meaning", "verdict")
GRID: dict[str, tuple[Any, ...]] = {
    "INVENTED_ZIPF": (3.0, 3.5, 4.0),
    "EASY_SHORT_ZIPF": (2.0, 2.5, 3.0, 99.0),
    "COPY_OVERLAP": (0.4, 0.5, 0.6, 0.75),
    "COVERAGE_MIN": (0.4, 0.5, 0.6, 0.7),
    "COVERAGE_TERMS_PER_SENTENCE": (2, 3, 4),
    "MIN_LENGTH_RATIO": (0.3, 0.4, 0.5, 0.6),
    "DROPPED_FACTS_MAX": (1, 2, 3),
    "GRADE_TOLERANCE": (1.0, 1.5, 2.0, 2.5),
    "GRADE_TOLERANCE_BELOW": (1.5, 2.0, 3.0, 4.0),
    "RARE_SHARE_AT_GRADE_3": (0.04, 0.06, 0.08, 0.10),
    "MEANING_MAX": (0.6, 0.65, 0.7, 0.72, 0.74, 0.76, 0.8, 1.0),
}
"""Thresholds searched with --tune, one check at a time, on the tuning part only."""
TUNED_BY_CHECK = {
    "invented": ("INVENTED_ZIPF", "EASY_SHORT_ZIPF"),
    "copy": ("COPY_OVERLAP",),
    "coverage": ("COVERAGE_MIN", "COVERAGE_TERMS_PER_SENTENCE", "MIN_LENGTH_RATIO", "DROPPED_FACTS_MAX"),
    "grade": ("GRADE_TOLERANCE", "GRADE_TOLERANCE_BELOW", "RARE_SHARE_AT_GRADE_3"),
    "meaning": ("MEANING_MAX",),
}


def labels_file(model: str) -> Path:
    """Where a model's hand labels are kept."""
    return LABELS_DIR / f"{model}.jsonl"


def load_labels(model: str) -> list[dict[str, Any]]:
    """The labelled rows, each with the meaning score its draft got (None where none was measured)."""
    from bench.quality_outputs import outputs_file, read_rows

    scores = {(r["pid"], r["level"], r["output"]): r.get("meaning") for r in read_rows(outputs_file(model))}
    rows = [json.loads(line) for line in labels_file(model).read_text().splitlines() if line.strip()]
    for row in rows:
        row["meaning"] = scores.get((row["pid"], row["level"], row["output"]))
    return rows


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
        "meaning": not labels.get("meaning_ok", True),
    }
    accept = labels.get("teacher_accept")
    truths["verdict"] = (not accept) if accept is not None else any(truths[k] for k in CHECKS[:-1])
    return truths


def flags(row: dict[str, Any]) -> dict[str, bool]:
    """Which problems the checker finds in the row's output (the meaning score asked, as the service does, only
    where the word checks pass)."""
    from worker.quality import adds_content, check

    source = row.get("source") or paragraph(row["pid"]).text  # review labels carry their source
    words = check(source, row["output"], row["grade_level"])
    scored = check(source, row["output"], row["grade_level"], row.get("meaning"))
    report = scored if words.passed else words
    return {
        "invented": adds_content(report.invented),
        "invented_facts": bool(report.invented.facts),
        "copy": report.copied,
        "grade": not (report.grade_ok and report.vocabulary_ok),
        "coverage": not report.coverage_ok or report.over_simplified,
        "meaning": not scored.meaning_ok,
        "verdict": report.verdict == "needs_review",
    }


def scores(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per check: counts, precision, recall and F1 of the checker's flags against the labels; for the verdict
    also its pass precision (of the passed drafts, the share a teacher would accept)."""
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
    passed = [t for t, f in pairs if not f["verdict"]]
    accepted = sum(not t["verdict"] for t, _ in pairs)
    out["verdict"]["passed"] = len(passed)
    out["verdict"]["pass_precision"] = sum(not t["verdict"] for t in passed) / len(passed) if passed else None
    out["verdict"]["accepted"] = accepted
    out["verdict"]["accept_recall"] = (sum(not t["verdict"] for t in passed) / accepted) if accepted else None
    return out


def auc(rows: list[dict[str, Any]], label: str) -> dict[str, Any]:
    """How well the meaning score ranks drafts with a labelled problem above drafts without (area under the ROC
    curve: 0.5 is chance), over the rows that have a score."""
    scored = [(r["meaning"], truth(r)[label]) for r in rows if r.get("meaning") is not None]
    bad = [s for s, problem in scored if problem]
    good = [s for s, problem in scored if not problem]
    if not bad or not good:
        return {"rows": len(scored), "auc": None}
    wins = sum((b > g) + 0.5 * (b == g) for b in bad for g in good)
    return {"rows": len(scored), "problems": len(bad), "auc": round(wins / (len(bad) * len(good)), 3)}


@contextmanager
def thresholds(values: dict[str, Any]) -> Iterator[None]:
    """Set quality.py's thresholds for the block, then put them back."""
    from worker import quality

    saved = {name: getattr(quality, name) for name in values}
    for name, value in values.items():
        setattr(quality, name, value)
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
        f1, _, _, values, s = max(results, key=lambda r: r[:3])
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
    v = result["verdict"]
    print(f"passed {v['passed']}: {v['pass_precision']} of them a teacher would accept; accepted {v['accepted']}")


def review_scores(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The verdict against reviewers' decisions (their labels say only whether a teacher took the draft as it was):
    of the drafts the checker passes, the share reviewers accepted, and of those they accepted, the share it passed."""
    pairs = [(bool(r["labels"]["teacher_accept"]), not flags(r)["verdict"]) for r in rows]
    passed = [accepted for accepted, passes in pairs if passes]
    accepted = [passes for accepted, passes in pairs if accepted]
    return {
        "rows": len(pairs),
        "accepted": len(accepted),
        "passed": len(passed),
        "pass_precision": sum(passed) / len(passed) if passed else None,
        "accept_recall": sum(accepted) / len(accepted) if accepted else None,
        "agreement": sum(a == p for a, p in pairs) / len(pairs) if pairs else None,
    }


def score_reviews(path: Path, argv: list[str]) -> int:
    """Score today's checker on review labels (`dynaquant labels export`), by level; write the JSON result."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    run = Recorder("quality_labels_reviews", argv)
    run.data["labels"] = str(path)
    run.data["all"] = review_scores(rows)
    run.data["by_level"] = {lvl: review_scores([r for r in rows if r["level"] == lvl]) for lvl in LEVELS}
    body = [(name, *(s[k] for k in ("rows", "accepted", "passed", "pass_precision", "accept_recall", "agreement")))
            for name, s in [("all", run.data["all"]), *run.data["by_level"].items()] if s["rows"]]  # fmt: skip
    print(table(("level", "rows", "accepted", "passed", "pass precision", "accept recall", "agreement"), body))
    run.save()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Score the checker on both parts (and tune on the first with --tune); write the JSON result."""
    from worker.settings import DEFAULT_MODEL

    parser = bench_parser(__doc__)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--tune", action="store_true", help="search the thresholds on the tuning part")
    parser.add_argument("--labels", type=Path, help="review labels (`dynaquant labels export`) to score the verdict on")
    args = parser.parse_args(argv)
    if args.labels is not None:
        return score_reviews(args.labels, argv or sys.argv[1:])
    rows = load_labels(args.model)
    parts: dict[str, list[dict[str, Any]]] = {"tuning": [], "held_out": []}
    for row in rows:
        parts[part_of(row["pid"])].append(row)
    run = Recorder("quality_labels" if args.model == DEFAULT_MODEL else f"quality_labels_{args.model}", argv or [])
    run.data["command"] = ".venv/bin/python -m bench.quality_labels" + " ".join(["", *(argv or sys.argv[1:])])
    outputs = [r for r in rows if r["level"] != "reference"]
    run.data["model"] = args.model
    run.data["rows"] = {k: len(v) for k, v in parts.items()}
    run.data["paragraphs"] = {k: sorted({r["pid"] for r in v}) for k, v in parts.items()}
    run.data["levels"] = {lvl: sum(r["level"] == lvl for r in rows) for lvl in (*LEVELS, "reference")}
    run.data["labelled_problem_rate"] = sum(truth(r)["verdict"] for r in outputs) / len(outputs)
    if args.tune:
        run.data["tuned"] = tune(parts["tuning"])
        print(json.dumps(run.data["tuned"], indent=2))
    for name, part_rows in parts.items():
        model_rows = [r for r in part_rows if r["level"] != "reference"]
        result = scores(model_rows)
        by_level = {lvl: scores([r for r in model_rows if r["level"] == lvl])["verdict"] for lvl in LEVELS}
        meaning = {label: auc(model_rows, label) for label in ("meaning", "verdict")}
        run.data[name] = {"outputs": result, "by_level": by_level, "meaning_auc": meaning}
        n_par = len({r["pid"] for r in model_rows})
        print_scores(f"{name}: {len(model_rows)} model outputs of {n_par} paragraphs", result)
        print(f"{name}: meaning score AUC against meaning problems {meaning['meaning']}, against rejection "
              f"{meaning['verdict']}")  # fmt: skip
    run.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
