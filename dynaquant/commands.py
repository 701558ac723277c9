"""The client subcommands of `dynaquant`: submit, status, job and labels export."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dynaquant.api import ServiceClient, ServiceError, ServiceUnreachable
from dynaquant.jobfile import JobFileError, JobLine, check_defaults, load_jobs, parse_text
from dynaquant.render import job_text, status_text
from dynaquant.submit import submit_file
from worker.errors import InputError
from worker.policy import LEVELS, TASK_PRIORITIES

# job field -> the `submit` option that gives it as a batch default
DEFAULT_OPTIONS: dict[str, str] = {
    "grade_level": "--grade-level",
    "subject": "--subject",
    "task_priority": "--task-priority",
    "priority": "--priority",
    "min_quantization": "--min-quantization",
    "force_quantization": "--force-quantization",
    "model": "--model",
    "max_tokens": "--max-tokens",
}


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="service URL (default: $DYNAQUANT_URL, else http://127.0.0.1:8000)")
    parser.add_argument("--token", help="API token for submitting (default: $DYNAQUANT_TOKEN)")


def _positive(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {raw}")
    return value


def add_submit(sub: argparse._SubParsersAction) -> None:
    """Arguments of `dynaquant submit`."""
    p = sub.add_parser(
        "submit",
        help="check a JSONL or CSV file of texts, submit it as one batch, wait, and write the results as JSONL",
        description="Every line is checked first; nothing is submitted when any line is bad (exit code 2). "
        "Fields: text, grade_level, subject, and optionally task_priority, priority, min_quantization, "
        "force_quantization, model, max_tokens. Exit code 0 when every job succeeded, 1 otherwise.",
    )
    p.add_argument("file", help="JSONL (one job object a line) or CSV (a header row of field names); - for stdin")
    p.add_argument("--out", "-o", type=Path, help="results file, one JSON line per input line (default: stdout)")
    p.add_argument("--format", choices=("jsonl", "csv"), help="file format (default: from the suffix or content)")
    _connection(p)
    p.add_argument("--timeout", type=_positive, help="stop waiting after this many seconds (jobs keep running)")
    p.add_argument("--poll-interval", type=_positive, default=0.5, help="seconds between polls (default 0.5)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    defaults = p.add_argument_group("defaults for lines that leave a field out")
    defaults.add_argument("--grade-level", "--grade", dest="grade_level", type=int, metavar="N")
    defaults.add_argument("--subject")
    defaults.add_argument("--task-priority", dest="task_priority", choices=TASK_PRIORITIES)
    defaults.add_argument("--priority", type=int, metavar="0-9", help="queue priority, 0 first (default 5)")
    defaults.add_argument("--min-quantization", dest="min_quantization", choices=LEVELS)
    defaults.add_argument("--force-quantization", dest="force_quantization", choices=LEVELS)
    defaults.add_argument("--model")
    defaults.add_argument("--max-tokens", dest="max_tokens", type=int, metavar="N")


def add_client_commands(sub: argparse._SubParsersAction) -> None:
    """Add submit, status, job and labels to the `dynaquant` parser."""
    add_submit(sub)
    status = sub.add_parser("status", help="workers, levels, cached models and queue depth as a table")
    _connection(status)
    status.add_argument("--json", action="store_true", help="print the API's JSON instead")
    job = sub.add_parser("job", help="one job: status, request, timing and result or error")
    job.add_argument("job_id", metavar="ID")
    _connection(job)
    job.add_argument("--json", action="store_true", help="print the API's JSON instead")
    labels = sub.add_parser("labels", help="reviewers' verdicts as hand labels")
    labels_sub = labels.add_subparsers(dest="labels_command", required=True)
    export = labels_sub.add_parser(
        "export",
        help="write every review verdict as JSONL in the checker's hand-label format",
        description="One line per reviewed draft: pid, model, level, grade_level, source, output, "
        "labels.teacher_accept and more. Re-validate the checker on them with "
        "`python -m bench.quality_labels --labels FILE`.",
    )
    export.add_argument("--model", help="only this model's labels")
    export.add_argument("--out", "-o", type=Path, help="where to write them (default: stdout)")
    _connection(export)


def batch_defaults(args: argparse.Namespace) -> dict[str, Any]:
    """The batch defaults given as options, checked; InputError names the option."""
    given = {field: getattr(args, field) for field in DEFAULT_OPTIONS if getattr(args, field) is not None}
    try:
        check_defaults(given)
    except InputError as exc:
        raise InputError(DEFAULT_OPTIONS.get(exc.field, exc.field), exc.reason) from None
    return given


def read_jobs(args: argparse.Namespace, defaults: dict[str, Any]) -> list[JobLine]:
    """The checked jobs of the file (or stdin)."""
    if args.file == "-":
        text = sys.stdin.read()
        fmt = args.format or ("jsonl" if text.lstrip().startswith("{") else "csv")
        return parse_text(text, fmt, defaults, "<stdin>")
    return load_jobs(Path(args.file), defaults, args.format)


def run_submit(args: argparse.Namespace) -> int:
    """`dynaquant submit`."""
    try:
        defaults = batch_defaults(args)
        jobs = read_jobs(args, defaults)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except JobFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    client = ServiceClient.from_env(args.url, args.token)
    return submit_file(client, jobs, args.out, defaults, args.timeout, args.poll_interval, args.quiet)


def run_status(args: argparse.Namespace) -> int:
    """`dynaquant status`: exit code 0 when some worker is alive, 1 when none is."""
    client = ServiceClient.from_env(args.url, args.token)
    body = client.status()
    print(json.dumps(body, indent=2) if args.json else status_text(body, client.url))
    return 0 if body.get("workers") else 1


def run_job(args: argparse.Namespace) -> int:
    """`dynaquant job ID`."""
    client = ServiceClient.from_env(args.url, args.token)
    job = client.job(args.job_id)
    print(json.dumps(job, indent=2, ensure_ascii=False) if args.json else job_text(job))
    return 0


def run_labels(args: argparse.Namespace) -> int:
    """`dynaquant labels export`: the review labels as JSONL, on stdout or in --out."""
    client = ServiceClient.from_env(args.url, args.token)
    rows = client.review_labels(args.model)
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if args.out is None:
        sys.stdout.write(lines)
    else:
        args.out.write_text(lines, encoding="utf-8")
        print(f"{len(rows)} labels written to {args.out}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run a client subcommand; a service that cannot be reached or refuses is reported in one line."""
    handlers = {"submit": run_submit, "status": run_status, "job": run_job, "labels": run_labels}
    try:
        return handlers[args.command](args)
    except ServiceUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
