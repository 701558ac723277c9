"""Who is alive: each member publishes its state under a key with a TTL and is listed in a set.

A member that dies stops refreshing its key and drops out when the TTL runs out; readers forget it
then. A state that does not parse (another release's) is logged and left out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Generic, TypeVar

import redis
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Presence(Generic[M]):
    """The published states of one kind of member (workers, supervisors)."""

    key: str
    members: str
    model: type[M]
    noun: str

    def publish(self, client: redis.Redis, ident: str, state: M, ttl: int) -> None:
        """Write one member's state with a TTL (seconds) and list it."""
        pipe = client.pipeline()
        pipe.set(self.key.format(ident), state.model_dump_json(), ex=ttl)
        pipe.sadd(self.members, ident)
        pipe.execute()

    def withdraw(self, client: redis.Redis, ident: str) -> None:
        """Remove a member's state when it stops cleanly."""
        pipe = client.pipeline()
        pipe.delete(self.key.format(ident))
        pipe.srem(self.members, ident)
        pipe.execute()

    def live(self, client: redis.Redis) -> list[M]:
        """State of every member still publishing, by ident; forgets the silent ones."""
        idents = sorted(i.decode() if isinstance(i, bytes) else str(i) for i in client.smembers(self.members))
        if not idents:
            return []
        values = client.mget([self.key.format(i) for i in idents])
        states, silent = [], []
        for ident, raw in zip(idents, values, strict=True):
            if raw is None:
                silent.append(ident)
                continue
            try:
                states.append(self.model.model_validate_json(raw))
            except ValidationError as exc:
                log.warning("%s %s publishes a state this release cannot read (left out): %s", self.noun, ident, exc)
        if silent:
            client.srem(self.members, *silent)
        return states
