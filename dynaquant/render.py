"""Plain-text views for the terminal: the service status as tables and one job as a readable summary."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Sequence
from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces; None shows as '-'."""
    cells = [[("-" if value is None else str(value)) for value in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any, fmt: str = "{:.1f}") -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return fmt.format(value)


def _memory(worker: dict[str, Any]) -> str | None:
    memory = _dict(worker.get("memory"))
    fraction, total = memory.get("used_fraction"), memory.get("total_gb")
    if not isinstance(fraction, int | float):
        return None
    return f"{fraction * 100:.1f}%" + (f" of {total:.1f} GB" if isinstance(total, int | float) else "")


def _levels(worker: dict[str, Any]) -> str | None:
    levels = _dict(worker.get("current_levels"))
    return ", ".join(f"{model}={level}" for model, level in sorted(levels.items())) or None


def queue_line(queue: dict[str, Any]) -> str:
    """'queue simplify: 3 waiting (priority 0: 1, 5: 2), 1 running'."""
    by_priority = {p: n for p, n in _dict(queue.get("by_priority")).items() if n}
    detail = f" (priority {', '.join(f'{p}: {n}' for p, n in by_priority.items())})" if by_priority else ""
    return f"queue {queue.get('name', '?')}: {queue.get('depth', 0)} waiting{detail}, {queue.get('running', 0)} running"


def status_text(body: dict[str, Any], url: str) -> str:
    """The status body as a header, a workers table, a cached-models table and the queue."""
    workers = [w for w in body.get("workers") or [] if isinstance(w, dict)]
    parts = [f"dynaquant at {url}: {len(workers)} worker{'s' if len(workers) != 1 else ''} alive"]
    if not workers:
        parts.append(str(body.get("message") or "no worker is alive"))
    else:
        rows = [
            [
                w.get("worker"),
                w.get("device"),
                _memory(w),
                w.get("memory_status"),
                w.get("recommended_level"),
                _levels(w),
                w.get("active_requests"),
                w.get("jobs_done"),
                w.get("threads"),
            ]
            for w in workers
        ]
        heads = ["WORKER", "DEVICE", "MEMORY", "BAND", "RECOMMENDED", "LEVELS", "ACTIVE", "JOBS DONE", "THREADS"]
        parts += ["", table(heads, rows)]
        models = [
            [
                w.get("worker"),
                m.get("name"),
                m.get("level"),
                _number(m.get("size_mb")),
                m.get("access_count"),
                m.get("status"),
            ]
            for w in workers
            for m in w.get("current_models") or []
            if isinstance(m, dict)
        ]
        parts.append("")
        if models:
            parts.append(table(["WORKER", "CACHED MODEL", "LEVEL", "SIZE MB", "ACCESSES", "STATUS"], models))
        else:
            parts.append("no model is cached")
    parts += ["", queue_line(_dict(body.get("queue")))]
    problems = _dict(body.get("service")).get("messages") or []
    if problems:
        parts += ["", "degraded:", *(f"  {message}" for message in problems)]
    return "\n".join(parts)


def _when(stamp: Any) -> str:
    if not isinstance(stamp, int | float):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _seconds(start: Any, end: Any) -> str | None:
    if isinstance(start, int | float) and isinstance(end, int | float):
        return f"{end - start:.2f} s"
    return None


def job_text(job: dict[str, Any]) -> str:
    """One job as a few readable lines: status, request, timing, result or error."""
    request = _dict(job.get("request"))
    lines = [
        f"job {job.get('job_id')}: {job.get('status')}",
        f"  request:  grade {request.get('grade_level')}, subject {request.get('subject')!s}, "
        f"task priority {request.get('task_priority')}, queue priority {job.get('priority')}, "
        f"model {request.get('model')}, max_tokens {request.get('max_tokens')}",
        f"  created:  {_when(job.get('created_at'))}"
        + (f"; waited {w}" if (w := _seconds(job.get("created_at"), job.get("started_at"))) else "")
        + (f"; latency {lat}" if (lat := _seconds(job.get("created_at"), job.get("finished_at"))) else ""),
        f"  worker:   {job.get('worker') or '-'} (attempts {job.get('attempts', 0)})"
        + (f"; batch {job['batch_id']}" if job.get("batch_id") else ""),
    ]
    result, error = job.get("result"), job.get("error")
    if isinstance(result, dict):
        lines.append(
            f"  level:    {result.get('level')} ({result.get('backend')}); {result.get('tokens_out')} tokens in "
            f"{_number(result.get('generation_seconds'), '{:.2f}')} s; "
            f"readability grade {_number(result.get('readability_grade'))}"
        )
        lines.append("  text:")
        lines += textwrap.wrap(str(result.get("text", "")), 96, initial_indent="    ", subsequent_indent="    ")
    if isinstance(error, dict):
        lines.append(f"  error:    {error.get('code')}: {error.get('message')}")
    return "\n".join(lines)
