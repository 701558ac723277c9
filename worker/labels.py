"""Reviewers' verdicts as human labels: counted in the profile of the level that wrote each draft, and kept in
Redis as rows of the checker's hand-label files (bench/data/labels), so the checker can be re-validated on real
reviews (`dynaquant labels export`, then `python -m bench.quality_labels --labels FILE`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import redis

from worker.contracts import JobResult
from worker.profiles import record_review
from worker.review import HumanLabel

log = logging.getLogger(__name__)

LABELS_KEY = "dq:review:labels"
LABELS_KEEP = 100_000
"""The newest labels kept; older ones drop off (export them first to keep them)."""


def label_row(label: HumanLabel, job_id: str, result: JobResult, source: str) -> dict[str, Any]:
    """A label as a row of a hand-label file, with the source it was judged against."""
    how = "accepted" if label.accepted else ("edited" if label.edited is not None else "replaced by a new draft")
    return {
        "pid": f"{job_id}#{label.paragraph}",
        "model": result.model,
        "level": label.level,
        "grade_level": result.grade_level,
        "subject": result.subject,
        "source": source,
        "output": label.output,
        "labels": {"teacher_accept": label.accepted},
        "checker_verdict": label.checker_verdict,
        "edited": label.edited,
        "reviewer": label.reviewer,
        "at": label.at,
        "note": f"{how} in review",
    }


def record_labels(
    client: redis.Redis,
    job_id: str,
    result: JobResult,
    labels: Sequence[HumanLabel],
    sources: Sequence[str],
    ttl_seconds: int,
) -> None:
    """Keep the labels for export and count each in its level's profile on the host that ran the job (one round
    trip)."""
    if not labels:
        return
    pipe = client.pipeline()
    for label in labels:
        row = label_row(label, job_id, result, sources[label.paragraph - 1])
        pipe.lpush(LABELS_KEY, json.dumps(row, ensure_ascii=False))
    pipe.ltrim(LABELS_KEY, 0, LABELS_KEEP - 1)
    if result.host and result.device:
        for label in labels:
            verdict = (label.checker_verdict == "pass", label.accepted)
            record_review(pipe, result.host, result.device, result.model, label.level, verdict, ttl_seconds)
    else:
        log.info("job %s does not say where it ran; its review labels are kept but no profile counts them", job_id)
    pipe.execute()


def read_labels(client: redis.Redis, model: str | None = None) -> list[dict[str, Any]]:
    """Every kept label, oldest first (one model's when given)."""
    rows = [json.loads(raw) for raw in reversed(client.lrange(LABELS_KEY, 0, -1))]
    return [row for row in rows if model is None or row.get("model") == model]
