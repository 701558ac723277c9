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

from worker.contracts import JobRecord
from worker.profiles import profile_key, record_review
from worker.review import HumanLabel

log = logging.getLogger(__name__)

LABELS_KEY = "dq:review:labels"
LABELS_KEEP = 100_000
"""The newest labels kept; older ones drop off (export them first to keep them)."""


def label_row(label: HumanLabel, job: JobRecord, source: str) -> dict[str, Any]:
    """A label as a row of a hand-label file, with the source it was judged against."""
    request, result = job.request, job.result
    how = "accepted" if label.accepted else ("edited" if label.edited is not None else "replaced by a new draft")
    return {
        "pid": f"{job.job_id}#{label.paragraph}",
        "model": job.model or (result.model if result else None),
        "level": label.level,
        "grade_level": request.grade_level if request else (result.grade_level if result else None),
        "subject": request.subject if request else None,
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
    client: redis.Redis, job: JobRecord, labels: Sequence[HumanLabel], sources: Sequence[str], ttl_seconds: int
) -> None:
    """Keep the labels for export and count each in its level's profile on the host that ran the job."""
    if not labels:
        return
    pipe = client.pipeline()
    for label in labels:
        pipe.lpush(LABELS_KEY, json.dumps(label_row(label, job, sources[label.paragraph - 1]), ensure_ascii=False))
    pipe.ltrim(LABELS_KEY, 0, LABELS_KEEP - 1)
    pipe.execute()
    result = job.result
    if result is None or not result.host or not result.device:
        log.info("job %s does not say where it ran; its review labels are kept but no profile counts them", job.job_id)
        return
    for label in labels:
        identity = {"host": result.host, "device": result.device, "model": result.model, "level": label.level}
        key = profile_key(result.host, result.device, result.model, label.level)
        record_review(client, key, identity, label.checker_verdict == "pass", label.accepted, ttl_seconds)


def read_labels(client: redis.Redis, model: str | None = None) -> list[dict[str, Any]]:
    """Every kept label, oldest first (one model's when given)."""
    rows = [json.loads(raw) for raw in reversed(client.lrange(LABELS_KEY, 0, -1))]
    return [row for row in rows if model is None or row.get("model") == model]
