"""Job and batch records in Redis: the one place that knows a job's status, result and history.

Transitions are Lua scripts so that two deliveries of the same job (at-least-once) store one result:
the first terminal write wins and later ones are ignored. A running job holds a lease (a key with a
short TTL that its worker's heartbeat renews), so a second delivery while the first worker is alive
does not run it again. When that worker dies, worker/recovery.py puts the job back on the queue through
REQUEUE, a claim that checks the job is still the dead worker's and moves its broker message in one step.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import redis
from pydantic import TypeAdapter

from worker.contracts import (
    TERMINAL,
    VERDICTS,
    BatchEntry,
    BatchRecord,
    JobError,
    JobEvent,
    JobRecord,
    JobResult,
    JobReview,
    JobSpec,
    JobStage,
    JobStatus,
    Phase,
    verdict_of,
)
from worker.errors import JobGone
from worker.policy import as_level
from worker.settings import DEFAULT_RESULT_TTL

STATUSES: tuple[str, ...] = tuple(JobStatus)
JOB_KEY = "dq:job:{}"
BATCH_KEY = "dq:batch:{}"
IDEMPOTENCY_KEY = "dq:idem:{}"
LEASE_KEY = "dq:job:{}:lease"
RECENT_KEY = "dq:jobs:recent"
RUNNING_KEY = "dq:jobs:running"
COUNTS_KEY = "dq:metrics:jobs_total"
LATENCY_KEY = "dq:metrics:latency"
LEVELS_KEY = "dq:metrics:jobs_by_level"
REOPT_KEY = "dq:metrics:reoptimizations"
VERDICTS_KEY = "dq:metrics:jobs_by_verdict"
"""Succeeded jobs by quality verdict and level: fields '<verdict>|<level>'."""
RECENT_KEEP = 500
LATENCY_BUCKETS: tuple[float, ...] = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)
HISTORY = TypeAdapter(list[JobEvent])
"""A job's `history` field: a JSON list of events the REQUEUE claim appends to."""

_START = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status == 'succeeded' or status == 'failed' or status == 'cancelled' then return status end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[2] then return 'busy:' .. holder end
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1], 'worker', ARGV[2], 'delivery_tag', ARGV[4],
  'stage', '')
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
redis.call('SADD', KEYS[3], ARGV[5])
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return 'running:' .. attempts
"""

_FINISH = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status == 'succeeded' or status == 'failed' or status == 'cancelled' then return status end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'finished_at', ARGV[2], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('SREM', KEYS[3], ARGV[6])
return 'ok:' .. (redis.call('HGET', KEYS[1], 'created_at') or '')
"""

_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""

_CANCEL = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status == 'queued' or status == 'running' then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', ARGV[1])
  redis.call('HINCRBY', KEYS[2], 'cancelled', 1)
  redis.call('SREM', KEYS[3], ARGV[2])
  return 'cancelled'
end
return status
"""

# A running job whose worker is gone goes back on the queue, once. KEYS: job, lease, the holder's heartbeat,
# kombu's unacked hash and index, the priority list to put the message on, the running set, the counters.
# ARGV: job id, holder, attempt, force ("1": the caller saw the holder's process exit), delivery tag, the
# unacked entry as read, the message to push, the history event (JSON), the job's new ceiling, now.
_REQUEUE = """
local record = redis.call('HMGET', KEYS[1], 'status', 'worker', 'attempts')
if record[1] ~= 'running' or record[2] ~= ARGV[2] or record[3] ~= ARGV[3] then return 'changed' end
local holder = redis.call('GET', KEYS[2])
if ARGV[4] == '1' then
  if holder and holder ~= ARGV[2] then return 'alive' end
elseif holder or redis.call('EXISTS', KEYS[3]) == 1 then
  return 'alive'
end
local answer = 'requeued'
local raw = ARGV[5] ~= '' and redis.call('HGET', KEYS[4], ARGV[5])
if raw and raw == ARGV[6] then
  redis.call('HDEL', KEYS[4], ARGV[5])
  redis.call('ZREM', KEYS[5], ARGV[5])
  redis.call('RPUSH', KEYS[6], ARGV[7])
else
  answer = 'requeued:message_elsewhere'
end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[7], ARGV[1])
local history = redis.call('HGET', KEYS[1], 'history')
if not history or history == '' or history == '[]' then
  history = '[' .. ARGV[8] .. ']'
else
  history = string.sub(history, 1, -2) .. ',' .. ARGV[8] .. ']'
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'worker', '', 'stage', '', 'history', history, 'requeued_at', ARGV[10])
if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'ceiling', ARGV[9]) end
redis.call('HINCRBY', KEYS[8], 'requeued', 1)
return answer
"""


def new_id() -> str:
    """A random, unguessable job or batch id."""
    return str(uuid.uuid4())


def _decode(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v) for k, v in raw.items()
    }


class JobStore:
    """Job and batch records kept in Redis, with the counters the metrics endpoint reads."""

    def __init__(self, client: redis.Redis, ttl: int = DEFAULT_RESULT_TTL) -> None:
        self.client = client
        self.ttl = ttl  # how long records and results are kept (DYNAQUANT_RESULT_TTL)
        self._start = client.register_script(_START)
        self._finish = client.register_script(_FINISH)
        self._cancel = client.register_script(_CANCEL)
        self._renew = client.register_script(_RENEW)
        self._requeue = client.register_script(_REQUEUE)

    def create(self, job_id: str, spec: JobSpec, batch_id: str | None = None) -> None:
        """Record a job as queued before it is sent to the broker."""
        now = time.time()
        fields: dict[Any, Any] = {
            "id": job_id,
            "status": JobStatus.QUEUED.value,
            "request": spec.model_dump_json(),
            "priority": spec.priority,
            "model": spec.model,
            "created_at": now,
            "attempts": 0,
            "batch_id": batch_id or "",
        }
        pipe = self.client.pipeline()
        pipe.hset(JOB_KEY.format(job_id), mapping=fields)
        pipe.expire(JOB_KEY.format(job_id), self.ttl)
        pipe.zadd(RECENT_KEY, {job_id: now})
        pipe.zremrangebyrank(RECENT_KEY, 0, -RECENT_KEEP - 1)
        pipe.hincrby(COUNTS_KEY, "submitted", 1)
        pipe.execute()

    def discard(self, job_id: str) -> None:
        """Forget a job that never reached the broker."""
        pipe = self.client.pipeline()
        pipe.delete(JOB_KEY.format(job_id))
        pipe.zrem(RECENT_KEY, job_id)
        pipe.hincrby(COUNTS_KEY, "submitted", -1)
        pipe.execute()

    def create_batch(self, batch_id: str, job_ids: Sequence[str]) -> None:
        """Record which jobs form a batch."""
        key = BATCH_KEY.format(batch_id)
        self.client.hset(key, mapping={"id": batch_id, "created_at": time.time(), "job_ids": json.dumps(list(job_ids))})
        self.client.expire(key, self.ttl)

    def start(self, job_id: str, worker: str, lease_seconds: int = 10, delivery_tag: str = "") -> tuple[str, int]:
        """Mark a job running and lease it to `worker`; returns the status it now has and the attempt number.

        A terminal status (cancelled before it ran, or already finished by an earlier delivery)
        is returned unchanged so the caller skips the work; "busy" means another live worker holds
        the job's lease (it is running there), so this delivery must not run it too. A lease held
        under the caller's own name is stale (a worker runs one job at a time) and is taken over.
        The broker's delivery tag is kept so that a job whose worker dies can be requeued at once.
        """
        keys = [JOB_KEY.format(job_id), LEASE_KEY.format(job_id), RUNNING_KEY]
        answer = self._start(keys=keys, args=[time.time(), worker, lease_seconds, delivery_tag, job_id])
        answer = answer.decode() if isinstance(answer, bytes) else str(answer)
        if answer.startswith("running:"):
            return "running", int(answer.split(":", 1)[1])
        if answer.startswith("busy:"):
            return "busy", 0
        return answer, 0

    def spec(self, job_id: str) -> JobSpec:
        """A job's request as the web app stored it, checked once at the door: read, not validated again."""
        raw = self.client.hget(JOB_KEY.format(job_id), "request")
        if not raw:
            raise JobGone(f"job {job_id} has no stored request (expired, or never recorded)")
        return stored_spec(raw)

    def lease_holder(self, job_id: str) -> str | None:
        """The worker that holds a running job's lease, if its lease is still live."""
        value = self.client.get(LEASE_KEY.format(job_id))
        return value.decode() if isinstance(value, bytes) else value

    def renew_lease(self, job_id: str, worker: str, lease_seconds: int) -> bool:
        """Keep a running job leased to its worker (from the heartbeat); False if another worker holds it."""
        return bool(self._renew(keys=[LEASE_KEY.format(job_id)], args=[worker, lease_seconds]))

    def set_stage(self, job_id: str, phase: Phase, model: str, level: str) -> None:
        """Note what a running job's worker is doing now (loading or running a model at a level), for recovery."""
        stage = JobStage(phase=phase, model=model, level=as_level(level), at=time.time())
        self.client.hset(JOB_KEY.format(job_id), "stage", stage.model_dump_json())

    def ceiling(self, job_id: str) -> str | None:
        """The most precise level a job may still run at, set when a worker died running it higher."""
        value = self.client.hget(JOB_KEY.format(job_id), "ceiling")
        return (value.decode() if isinstance(value, bytes) else value) or None

    def running_ids(self) -> list[str]:
        """Ids of the jobs marked running (some may have ended since; callers check the record)."""
        return sorted(i.decode() if isinstance(i, bytes) else str(i) for i in self.client.smembers(RUNNING_KEY))

    def raw(self, job_id: str) -> dict[str, str]:
        """A job's stored fields as they are in Redis (empty when unknown)."""
        return _decode(self.client.hgetall(JOB_KEY.format(job_id)))

    def requeue(self, keys: Sequence[str], args: Sequence[Any]) -> str:
        """Run the requeue claim (see _REQUEUE for its keys and arguments); worker/recovery.py builds them."""
        answer = self._requeue(keys=list(keys), args=list(args))
        return answer.decode() if isinstance(answer, bytes) else str(answer)

    def release_lease(self, job_id: str) -> None:
        """Drop a job's lease once its worker is done with it."""
        self.client.delete(LEASE_KEY.format(job_id))

    def succeed(self, job_id: str, result: JobResult) -> bool:
        """Store a job's result unless it already ended; True when this call stored it."""
        latency = self._end(job_id, "succeeded", "result", result.model_dump_json())
        if latency is not None and not math.isnan(latency):  # NaN: no creation time, nothing to count
            self._observe(latency, result)
        return latency is not None

    def fail(self, job_id: str, code: str, message: str) -> bool:
        """Store a job's error unless it already ended; True when this call stored it."""
        return self._end(job_id, "failed", "error", JobError(code=code, message=message).model_dump_json()) is not None

    def cancel(self, job_id: str) -> str:
        """Cancel a queued or running job; returns the status after the call ('missing' if unknown)."""
        answer = self._cancel(keys=[JOB_KEY.format(job_id), COUNTS_KEY, RUNNING_KEY], args=[time.time(), job_id])
        return answer.decode() if isinstance(answer, bytes) else str(answer)

    def status(self, job_id: str) -> str | None:
        """The job's status alone (cheap enough to poll while it runs)."""
        value = self.client.hget(JOB_KEY.format(job_id), "status")
        return value.decode() if isinstance(value, bytes) else value

    def get(self, job_id: str) -> JobRecord | None:
        """The job's public record, or None for an id never issued (or long expired)."""
        raw = self.client.hgetall(JOB_KEY.format(job_id))
        return public_job(_decode(raw)) if raw else None

    def get_many(self, job_ids: Iterable[str]) -> list[JobRecord | None]:
        """Several jobs' records in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        ids = list(job_ids)
        for job_id in ids:
            pipe.hgetall(JOB_KEY.format(job_id))
        return [public_job(_decode(raw)) if raw else None for raw in pipe.execute()]

    def batch(self, batch_id: str) -> BatchRecord | None:
        """A batch with each job's status and the counts by status."""
        raw = self.client.hgetall(BATCH_KEY.format(batch_id))
        if not raw:
            return None
        record = _decode(raw)
        job_ids: list[str] = json.loads(record["job_ids"])
        entries = [
            BatchEntry(job_id=job_id, status=job.status, result=job.result)
            if job
            else BatchEntry(job_id=job_id, status="expired")
            for job_id, job in zip(job_ids, self.get_many(job_ids), strict=True)
        ]
        counts = dict.fromkeys(STATUSES, 0)
        verdicts: dict[str, int] = dict.fromkeys(VERDICTS, 0)
        for entry in entries:
            counts[entry.status] = counts.get(entry.status, 0) + 1
            if (verdict := verdict_of(entry.result)) is not None:
                verdicts[verdict] += 1
        return BatchRecord(
            batch_id=batch_id,
            created_at=float(record["created_at"]),
            total=len(job_ids),
            counts=counts,
            verdicts=verdicts,
            done=all(e.status in TERMINAL or e.status == "expired" for e in entries),
            jobs=entries,
        )

    def recent(self, limit: int = 50, verdict: str | None = None, review_state: str | None = None) -> list[JobRecord]:
        """The latest jobs, newest first; with a verdict or a review state, the latest succeeded jobs that have it."""
        filtered = verdict is not None or review_state is not None
        raw: list[Any] = self.client.zrevrange(RECENT_KEY, 0, (RECENT_KEEP if filtered else limit) - 1)
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in raw]
        jobs = [job for job in self.get_many(ids) if job]
        if verdict is not None:
            jobs = [job for job in jobs if verdict_of(job.result) == verdict]
        if review_state is not None:
            jobs = [job for job in jobs if job.review_state == review_state]
        return jobs[:limit]

    def change_review(self, job_id: str, change: Callable[[JobRecord], tuple[JobReview, JobResult]]) -> JobRecord:
        """Store a job's review and reviewed result as `change` makes them from the record, atomically: when another
        reviewer changes the job in between, `change` runs again on the new record. Raises what `change` raises."""
        key = JOB_KEY.format(job_id)
        changed: list[JobRecord] = []

        def transaction(pipe: redis.client.Pipeline) -> None:
            raw = pipe.hgetall(key)
            if not raw:
                raise KeyError(job_id)
            record = public_job(_decode(raw))
            review, result = change(record)
            pipe.multi()
            pipe.hset(key, mapping={"review": review.model_dump_json(), "result": result.model_dump_json()})
            changed[:] = [record.model_copy(update={"review": review, "review_state": review.state, "result": result})]

        self.client.transaction(transaction, key)
        return changed[0]

    def remember_idempotency(self, key: str, value: str) -> str:
        """Bind a client's Idempotency-Key to a job or batch id; returns the id bound first."""
        name = IDEMPOTENCY_KEY.format(key)
        if self.client.set(name, value, nx=True, ex=self.ttl):
            return value
        existing = self.client.get(name)
        return existing.decode() if isinstance(existing, bytes) else str(existing)

    def lookup_idempotency(self, key: str) -> str | None:
        """The id a client's Idempotency-Key was bound to, if any."""
        existing = self.client.get(IDEMPOTENCY_KEY.format(key))
        return existing.decode() if isinstance(existing, bytes) else existing

    def count_reoptimization(self) -> None:
        """Count a model changing level in some worker."""
        self.client.incr(REOPT_KEY)

    def _end(self, job_id: str, status: str, field: str, value: str) -> float | None:
        """Store a terminal status unless the job already ended; None when it had, else its latency in seconds
        (NaN when its creation time is unknown). One round trip: the script answers with created_at."""
        now = time.time()
        answer = self._finish(
            keys=[JOB_KEY.format(job_id), COUNTS_KEY, RUNNING_KEY], args=[status, now, field, value, self.ttl, job_id]
        )
        text = answer.decode() if isinstance(answer, bytes) else str(answer)
        if not text.startswith("ok:"):
            return None
        created = text.removeprefix("ok:")
        return now - float(created) if created else float("nan")

    def _observe(self, latency: float, result: JobResult) -> None:
        """Count a succeeded job in the latency histogram, by level and by verdict, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for bound in LATENCY_BUCKETS:
            if latency <= bound:
                pipe.hincrby(LATENCY_KEY, str(bound), 1)
        pipe.hincrby(LATENCY_KEY, "+Inf", 1)
        pipe.hincrbyfloat(LATENCY_KEY, "sum", latency)
        pipe.hincrby(LEVELS_KEY, result.level, 1)
        if (verdict := verdict_of(result)) is not None:
            pipe.hincrby(VERDICTS_KEY, f"{verdict}|{result.level}", 1)
        pipe.execute()


def stored_spec(raw: str | bytes) -> JobSpec:
    """A stored job request, as written from a validated JobSpec (no second validation)."""
    return JobSpec.model_construct(**json.loads(raw))


def public_job(record: dict[str, str]) -> JobRecord:
    """A stored job as the API shows it."""

    def stamp(name: str) -> float | None:
        return float(record[name]) if record.get(name) else None

    def parsed(name: str) -> str | None:
        return record.get(name) or None

    request, result, error, stage = parsed("request"), parsed("result"), parsed("error"), parsed("stage")
    review = JobReview.model_validate_json(record["review"]) if record.get("review") else None
    return JobRecord(
        job_id=record["id"],
        status=JobStatus(record["status"]),
        batch_id=record.get("batch_id") or None,
        priority=int(record.get("priority", 5)),
        model=record.get("model") or None,
        request=stored_spec(request) if request else None,
        attempts=int(record.get("attempts", 0)),
        worker=record.get("worker") or None,
        created_at=stamp("created_at"),
        started_at=stamp("started_at"),
        finished_at=stamp("finished_at"),
        result=JobResult.model_validate_json(result) if result else None,
        error=JobError.model_validate_json(error) if error else None,
        stage=JobStage.model_validate_json(stage) if stage else None,
        history=HISTORY.validate_json(record["history"]) if record.get("history") else [],
        ceiling=as_level(record["ceiling"]) if record.get("ceiling") else None,
        review_state=review.state if review else ("unreviewed" if record["status"] == JobStatus.SUCCEEDED else None),
        review=review,
    )
