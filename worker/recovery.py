"""Jobs whose worker died go back on the queue within seconds, exactly once, and retry one level lower.

A running job holds a lease that its worker's heartbeat renews (worker/jobs.py), and every worker
publishes a heartbeat (worker/status.py). A job whose lease and whose worker's heartbeat have both run out,
and stayed out for longer than a heartbeat (a living worker whose Redis blinked beats again within one), is
requeued by the REQUEUE claim in worker/jobs.py: one Lua script that checks the job is still running on that
worker at that attempt and moves its broker message from kombu's `unacked` hash back to the head of its
priority list, which is what kombu's own restore does once the visibility timeout has passed, only sooner.
Two sweepers cannot requeue a job twice (the second finds the record changed), no duplicate message is left
behind, and a living worker, whose heartbeat renews its lease, is never robbed. `dynaquant up` sees its own
worker exit and claims that worker's jobs at once (`dead`); every live worker sweeps on each heartbeat.

A worker that dies while loading or running a model at a level may have been killed for memory: the job's
next attempt, and that host's jobs on that model for DYNAQUANT_CRASH_CEILING_SECONDS, run at least one level
lower (a ceiling the policy applies, worker/policy.py).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis

from worker import queues, status
from worker.contracts import HostCeiling, JobEvent, JobStage
from worker.jobs import COUNTS_KEY, JOB_KEY, LEASE_KEY, RUNNING_KEY, JobStore
from worker.policy import LEVELS, Level, as_level, shift
from worker.settings import Settings

CEILING_KEY = "dq:ceiling:{}:{}"
log = logging.getLogger(__name__)


def host_of(worker: str) -> str:
    """The host part of a Celery node name (`worker1@host` -> `host`)."""
    return worker.split("@", 1)[1] if "@" in worker else worker


def most_restrictive(*levels: str | None) -> Level | None:
    """The least precise of the given ceilings (None when there is none)."""
    known = [level for level in LEVELS if level in levels]
    return known[-1] if known else None


def host_ceiling(client: redis.Redis, host: str, model: str) -> HostCeiling | None:
    """The ceiling a host's jobs on a model are under after a worker died there, if it still holds."""
    raw = client.get(CEILING_KEY.format(host, model))
    return HostCeiling.model_validate_json(raw) if raw else None


def host_ceilings(client: redis.Redis, host: str, models: Iterable[str]) -> dict[str, HostCeiling]:
    """The ceilings in force on a host for the given models, for the worker status."""
    names = list(models)
    values = client.mget([CEILING_KEY.format(host, model) for model in names]) if names else []
    return {model: HostCeiling.model_validate_json(raw) for model, raw in zip(names, values, strict=True) if raw}


def _set_host_ceiling(client: redis.Redis, host: str, model: str, level: Level, reason: str, seconds: int) -> None:
    if seconds <= 0:
        return
    current = host_ceiling(client, host, model)
    level = most_restrictive(level, current.level if current else None) or level
    now = time.time()
    value = HostCeiling(model=model, level=level, reason=reason, since=now, until=now + seconds)
    client.set(CEILING_KEY.format(host, model), value.model_dump_json(), ex=seconds)


def _unacked_entry(client: redis.Redis, job_id: str, tag: str) -> tuple[str, str | None]:
    """The job's delivery tag and its raw `unacked` entry (found by task id when the tag was not recorded)."""
    if tag:
        raw = client.hget(queues.UNACKED_KEY, tag)
        return tag, raw.decode() if isinstance(raw, bytes) else raw
    for key, value in client.hgetall(queues.UNACKED_KEY).items():
        text = value.decode() if isinstance(value, bytes) else str(value)
        try:
            if json.loads(text)[0]["headers"]["id"] == job_id:
                return (key.decode() if isinstance(key, bytes) else str(key)), text
        except (ValueError, KeyError, IndexError, TypeError):
            continue
    return "", None


def _restored_message(raw: str | None, record: dict[str, str], queue: str) -> tuple[str, str]:
    """The priority list and the message to push back, marked redelivered as kombu marks a restored one."""
    if raw is None:
        return queues.list_for_priority(queue, int(record.get("priority") or 5)), ""
    payload, _exchange, routing_key = json.loads(raw)
    payload.setdefault("headers", {})["redelivered"] = True
    payload.setdefault("properties", {}).setdefault("delivery_info", {})["redelivered"] = True
    priority = payload["properties"].get("priority")
    target = queues.list_for_priority(routing_key or queue, int(priority if priority is not None else 0))
    return target, json.dumps(payload)


@dataclass
class Sweeper:
    """Finds running jobs whose worker is gone and requeues each once; `me` (a worker) never claims its own job."""

    client: redis.Redis
    settings: Settings
    me: str | None = None
    first_seen: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.store = JobStore(self.client, self.settings.result_ttl)

    @property
    def grace_seconds(self) -> float:
        """How long a job must look orphaned before it is claimed: longer than one heartbeat."""
        return self.settings.heartbeat_seconds * 1.5

    def sweep(self, dead: Iterable[str] = ()) -> list[str]:
        """Requeue the running jobs of dead workers (`dead`: known to have exited); returns the job ids requeued."""
        gone = set(dead)
        try:
            return [job_id for job_id in self.store.running_ids() if self._maybe_requeue(job_id, gone)]
        except redis.RedisError:
            self.first_seen.clear()  # after an outage, living workers get a heartbeat's time to show up again
            raise

    def _maybe_requeue(self, job_id: str, dead: set[str]) -> bool:
        record = self.store.raw(job_id)
        if record.get("status") != "running":
            if not record or record.get("status") in ("succeeded", "failed", "cancelled"):
                self.client.srem(RUNNING_KEY, job_id)
            self.first_seen.pop(job_id, None)
            return False
        holder = record.get("worker", "")
        if holder == self.me:
            return False
        forced = holder in dead
        if not forced and not self._looks_orphaned(job_id, holder):
            return False
        return self._claim(job_id, record, forced)

    def _looks_orphaned(self, job_id: str, holder: str) -> bool:
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(LEASE_KEY.format(job_id))
        pipe.exists(status.WORKER_KEY.format(holder))
        if any(pipe.execute()):
            self.first_seen.pop(job_id, None)
            return False
        now = time.monotonic()
        return now - self.first_seen.setdefault(job_id, now) >= self.grace_seconds

    def _claim(self, job_id: str, record: dict[str, str], forced: bool) -> bool:
        holder = record.get("worker", "")
        tag, raw = _unacked_entry(self.client, job_id, record.get("delivery_tag", ""))
        target, message = _restored_message(raw, record, self.settings.queue)
        stage = JobStage.model_validate_json(record["stage"]) if record.get("stage") else None
        lowered = as_level(shift(stage.level, 1)) if stage is not None else None
        ceiling = most_restrictive(record.get("ceiling"), lowered)
        event = JobEvent(
            event="requeued",
            reason="worker lost",
            worker=holder,
            attempt=int(record.get("attempts") or 0),
            phase=stage.phase if stage else None,
            model=stage.model if stage else None,
            level=stage.level if stage else None,
            ceiling=ceiling,
            detected_by=self.me or "supervisor",
            at=time.time(),
        )
        keys = [
            JOB_KEY.format(job_id), LEASE_KEY.format(job_id), status.WORKER_KEY.format(holder), queues.UNACKED_KEY,
            queues.UNACKED_INDEX_KEY, target, RUNNING_KEY, COUNTS_KEY,
        ]  # fmt: skip
        args = [
            job_id, holder, record.get("attempts", ""), "1" if forced else "0", tag, raw or "", message,
            event.model_dump_json(), ceiling or "", time.time(),
        ]  # fmt: skip
        answer = self.store.requeue(keys, args)
        self.first_seen.pop(job_id, None)
        if not answer.startswith("requeued"):
            return False
        log.warning("job %s: worker %s was lost (%s); requeued (%s)", job_id, holder, stage or "no stage", answer)
        if stage is not None and lowered is not None:
            reason = f"worker {holder} died while {stage.phase} {stage.model} at {stage.level}"
            seconds = self.settings.crash_ceiling_seconds
            _set_host_ceiling(self.client, host_of(holder), stage.model, lowered, reason, seconds)
        return True
