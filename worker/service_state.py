"""What `dynaquant up` publishes about the processes it supervises, and how the web app reads it.

The supervisor writes its state (a SupervisorState of worker.contracts) to Redis with a TTL on every
tick; a supervisor that stops (or dies) drops out when the TTL runs out, like a worker's heartbeat.
The web app reads it here and never imports the supervisor.
"""

from __future__ import annotations

import logging

import redis
from pydantic import ValidationError

from worker.contracts import ServiceSummary, SupervisorState

SUPERVISOR_KEY = "dq:supervisor:{}"
SUPERVISORS_SET = "dq:supervisors"
log = logging.getLogger(__name__)


def publish(client: redis.Redis, ident: str, state: SupervisorState, ttl: int) -> None:
    """Write one supervisor's state with a TTL (seconds) and list it."""
    pipe = client.pipeline()
    pipe.set(SUPERVISOR_KEY.format(ident), state.model_dump_json(), ex=ttl)
    pipe.sadd(SUPERVISORS_SET, ident)
    pipe.execute()


def withdraw(client: redis.Redis, ident: str) -> None:
    """Remove a supervisor's state when it stops cleanly."""
    pipe = client.pipeline()
    pipe.delete(SUPERVISOR_KEY.format(ident))
    pipe.srem(SUPERVISORS_SET, ident)
    pipe.execute()


def live_supervisors(client: redis.Redis) -> list[SupervisorState]:
    """State of every supervisor still publishing; forgets the silent ones, leaves out what does not parse."""
    idents = sorted(i.decode() if isinstance(i, bytes) else str(i) for i in client.smembers(SUPERVISORS_SET))
    if not idents:
        return []
    values = client.mget([SUPERVISOR_KEY.format(i) for i in idents])
    silent = [ident for ident, raw in zip(idents, values, strict=True) if raw is None]
    if silent:
        client.srem(SUPERVISORS_SET, *silent)
    states = []
    for ident, raw in zip(idents, values, strict=True):
        if raw is None:
            continue
        try:
            states.append(SupervisorState.model_validate_json(raw))
        except ValidationError as exc:
            log.warning("supervisor %s publishes a state this release cannot read (left out): %s", ident, exc)
    return states


def summary(client: redis.Redis) -> ServiceSummary:
    """The supervisors' view for the status API and /readyz: degraded or not, and why."""
    return ServiceSummary.of(live_supervisors(client))
