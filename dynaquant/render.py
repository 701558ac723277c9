"""Plain-text views for the terminal: the service status as tables and one job as a readable summary."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Sequence
from typing import Any

from worker.contracts import SETTLED, JobRecord, QualityReport, QueueSummary, StatusView, WorkerState, gib


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces; None shows as '-'."""
    cells = [[("-" if value is None else str(value)) for value in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def queue_line(queue: QueueSummary) -> str:
    """'queue simplify: 3 waiting (priority 0: 1, 5: 2), 1 running'."""
    by_priority = {p: n for p, n in queue.by_priority.items() if n}
    detail = f" (priority {', '.join(f'{p}: {n}' for p, n in by_priority.items())})" if by_priority else ""
    return f"queue {queue.name}: {queue.depth} waiting{detail}, {queue.running} running"


def _worker_row(w: WorkerState) -> list[Any]:
    memory = f"{w.memory.used_fraction * 100:.1f}% of {gib(w.memory.total_bytes):.1f} GB"
    levels = ", ".join(f"{model}={level}" for model, level in sorted(w.current_levels.items())) or None
    return [
        w.worker, w.device, memory, w.memory_status, w.recommended_level, levels, w.active_requests, w.jobs_done,
        w.threads,
    ]  # fmt: skip


def status_text(body: dict[str, Any], url: str) -> str:
    """The status body as a header, a workers table, a cached-models table and the queue."""
    view = StatusView.model_validate(body)
    count = len(view.workers)
    parts = [f"dynaquant at {url}: {count} worker{'s' if count != 1 else ''} alive"]
    if not view.workers:
        parts.append(view.message or "no worker is alive")
    else:
        heads = ["WORKER", "DEVICE", "MEMORY", "BAND", "RECOMMENDED", "LEVELS", "ACTIVE", "JOBS DONE", "THREADS"]
        parts += ["", table(heads, [_worker_row(w) for w in view.workers])]
        models = [
            [m.worker, m.name, m.level, f"{m.size_mb:.1f}", m.access_count, m.status] for m in view.current_models
        ]
        parts.append("")
        if models:
            parts.append(table(["WORKER", "CACHED MODEL", "LEVEL", "SIZE MB", "ACCESSES", "STATUS"], models))
        else:
            parts.append("no model is cached")
    parts += ["", queue_line(view.queue)]
    if view.service.messages:
        parts += ["", "degraded:", *(f"  {message}" for message in view.service.messages)]
    return "\n".join(parts)


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp is not None else "-"


def _seconds(start: float | None, end: float | None) -> str | None:
    return f"{end - start:.2f} s" if start is not None and end is not None else None


def quality_lines(report: QualityReport | None) -> list[str]:
    """The quality verdict, the grade against the target and the reasons, as indented lines."""
    if report is None:
        return []
    grade = f"{report.grade:.1f}" if report.grade is not None else "-"
    lines = [f"  quality:  {report.verdict.replace('_', ' ')}; grade {grade} for a grade-{report.target_grade} target"]
    lines += [f"    - {reason}" for reason in report.reasons]
    return lines


def review_line(job: JobRecord) -> str:
    """Where the job's review stands, and where to do it."""
    page = f"/jobs/{job.job_id}/review"
    if job.review is None:
        return f"unreviewed (review it at {page})"
    decided = sum(p.state in SETTLED for p in job.review.paragraphs)
    return f"{job.review.state}, {decided} of {len(job.review.paragraphs)} paragraphs decided ({page})"


def job_text(body: dict[str, Any]) -> str:
    """One job as a few readable lines: status, request, timing, result or error."""
    job = JobRecord.model_validate(body)
    request = job.request
    asked = (
        f"grade {request.grade_level}, subject {request.subject}, task priority {request.task_priority}, "
        f"queue priority {job.priority}, model {request.model}, max_tokens {request.max_tokens}"
        if request
        else "-"
    )
    lines = [
        f"job {job.job_id}: {job.status}",
        f"  request:  {asked}",
        f"  created:  {_when(job.created_at)}"
        + (f"; waited {w}" if (w := _seconds(job.created_at, job.started_at)) else "")
        + (f"; latency {lat}" if (lat := _seconds(job.created_at, job.finished_at)) else ""),
        f"  worker:   {job.worker or '-'} (attempts {job.attempts})"
        + (f"; batch {job.batch_id}" if job.batch_id else ""),
    ]
    if job.result is not None:
        grade = f"{job.result.readability_grade:.1f}" if job.result.readability_grade is not None else "-"
        lines.append(
            f"  level:    {job.result.level} ({job.result.backend}); {job.result.tokens_out} tokens in "
            f"{job.result.generation_seconds:.2f} s; readability grade {grade}"
        )
        lines += quality_lines(job.result.quality)
        lines.append(f"  review:   {review_line(job)}")
        lines.append("  text:" + (" (as reviewed)" if job.review and job.review.state != "unreviewed" else ""))
        for paragraph in job.result.text.split("\n\n"):
            lines += textwrap.wrap(paragraph, 96, initial_indent="    ", subsequent_indent="    ")
    for event in job.history:
        where = f", {event.phase} {event.model} at {event.level}" if event.phase else ""
        lines.append(
            f"  {event.event}: {event.reason} ({event.worker}, attempt {event.attempt}{where}); "
            f"next attempt at most {event.ceiling or 'any level'}"
        )
    if job.error is not None:
        lines.append(f"  error:    {job.error.code}: {job.error.message}")
    return "\n".join(lines)
