"""What `dynaquant up` publishes about the processes it supervises, and how the web app reads it.

The supervisor writes its state to Redis with a TTL on every tick; a supervisor that stops (or dies)
drops out when the TTL runs out, like a worker's heartbeat. Readers get plain dicts: the web app never
imports the supervisor.
"""

from __future__ import annotations

import json
from typing import Any

import redis

SUPERVISOR_KEY = "dq:supervisor:{}"
SUPERVISORS_SET = "dq:supervisors"


def publish(client: redis.Redis, ident: str, state: dict[str, Any], ttl: int) -> None:
    """Write one supervisor's state with a TTL and list it."""
    pipe = client.pipeline()
    pipe.set(SUPERVISOR_KEY.format(ident), json.dumps(state), ex=ttl)
    pipe.sadd(SUPERVISORS_SET, ident)
    pipe.execute()


def withdraw(client: redis.Redis, ident: str) -> None:
    """Remove a supervisor's state when it stops cleanly."""
    pipe = client.pipeline()
    pipe.delete(SUPERVISOR_KEY.format(ident))
    pipe.srem(SUPERVISORS_SET, ident)
    pipe.execute()


def live_supervisors(client: redis.Redis) -> list[dict[str, Any]]:
    """State of every supervisor still publishing; forgets the silent ones."""
    idents = sorted(i.decode() if isinstance(i, bytes) else str(i) for i in client.smembers(SUPERVISORS_SET))
    if not idents:
        return []
    values = client.mget([SUPERVISOR_KEY.format(i) for i in idents])
    silent = [ident for ident, raw in zip(idents, values, strict=True) if raw is None]
    if silent:
        client.srem(SUPERVISORS_SET, *silent)
    return [json.loads(raw) for raw in values if raw is not None]


def problems(supervisors: list[dict[str, Any]]) -> list[str]:
    """One sentence per supervised process that is not running (given up, or waiting to restart)."""
    return [
        str(process.get("message"))
        for supervisor in supervisors
        for process in supervisor.get("processes", [])
        if process.get("state") != "running" and process.get("message")
    ]


def summary(supervisors: list[dict[str, Any]]) -> dict[str, Any]:
    """The supervisors' view for the status API and /readyz: degraded or not, and why."""
    messages = problems(supervisors)
    processes = [
        {k: p.get(k) for k in ("name", "role", "state", "pid", "restarts", "last_exit_code", "threads", "message")}
        | {"host": s.get("host")}
        for s in supervisors
        for p in s.get("processes", [])
    ]
    return {"supervised": bool(supervisors), "degraded": bool(messages), "messages": messages, "processes": processes}
