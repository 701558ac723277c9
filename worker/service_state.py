"""What `dynaquant up` publishes about the processes it supervises, and how the web app reads it.

The supervisor writes its state (a SupervisorState of worker.contracts) to Redis with a TTL on every
tick; a supervisor that stops (or dies) drops out when the TTL runs out, like a worker's heartbeat.
The web app reads it here and never imports the supervisor.
"""

from __future__ import annotations

import logging

import redis

from worker.contracts import ServiceSummary, SupervisorState
from worker.presence import Presence

SUPERVISOR_KEY = "dq:supervisor:{}"
SUPERVISORS_SET = "dq:supervisors"
log = logging.getLogger(__name__)


SUPERVISORS = Presence(SUPERVISOR_KEY, SUPERVISORS_SET, SupervisorState, "supervisor")


def publish(client: redis.Redis, ident: str, state: SupervisorState, ttl: int) -> None:
    """Write one supervisor's state with a TTL (seconds) and list it."""
    SUPERVISORS.publish(client, ident, state, ttl)


def withdraw(client: redis.Redis, ident: str) -> None:
    """Remove a supervisor's state when it stops cleanly."""
    SUPERVISORS.withdraw(client, ident)


def live_supervisors(client: redis.Redis) -> list[SupervisorState]:
    """State of every supervisor still publishing; forgets the silent ones."""
    return SUPERVISORS.live(client)


def summary(client: redis.Redis) -> ServiceSummary:
    """The supervisors' view for the status API and /readyz: degraded or not, and why."""
    return ServiceSummary.of(live_supervisors(client))
