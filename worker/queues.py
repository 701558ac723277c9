"""The broker's queue lists in Redis, as kombu lays them out: depth per priority and jobs running.

kombu keeps one Redis list per priority step: the queue's own name for step 0, then `<queue><sep><step>`.
Jobs taken by a worker and not yet acknowledged (acks are late) sit in the `unacked` hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

import celeryconfig

UNACKED_KEY = "unacked"
UNACKED_INDEX_KEY = "unacked_index"
_OPTIONS: dict[str, Any] = dict(celeryconfig.broker_transport_options)
PRIORITY_STEPS: tuple[int, ...] = tuple(int(step) for step in _OPTIONS.get("priority_steps", range(10)))
SEPARATOR = str(_OPTIONS.get("sep", "\x06\x16"))


def priority_queue_names(queue: str) -> list[str]:
    """The Redis lists of one queue, one per priority step, highest priority first."""
    return [queue if step == 0 else f"{queue}{SEPARATOR}{step}" for step in PRIORITY_STEPS]


def list_for_priority(queue: str, priority: int) -> str:
    """The Redis list kombu puts a message of this priority on (its `_q_for_pri`)."""
    clamped = min(max(int(priority), 0), 9)
    steps = [s for s in PRIORITY_STEPS if s <= clamped]
    step = steps[-1] if steps else PRIORITY_STEPS[0]
    return queue if step == 0 else f"{queue}{SEPARATOR}{step}"


def queue_depth_by_priority(client: redis.Redis, queues: Sequence[str]) -> dict[int, int]:
    """Messages waiting per priority step, summed over the queues, in one round trip."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        for name in priority_queue_names(queue):
            pipe.llen(name)
    counts = [int(n) for n in pipe.execute()]
    depth = dict.fromkeys(PRIORITY_STEPS, 0)
    for index, count in enumerate(counts):
        depth[PRIORITY_STEPS[index % len(PRIORITY_STEPS)]] += count
    return depth


def queue_depth(client: redis.Redis, queues: Sequence[str]) -> int:
    """Messages waiting in every priority list of the queues (a plain LLEN sees only one)."""
    return sum(queue_depth_by_priority(client, queues).values())


def jobs_running(client: redis.Redis) -> int:
    """Messages a worker took and has not acknowledged yet: the jobs running."""
    return int(client.hlen(UNACKED_KEY))
