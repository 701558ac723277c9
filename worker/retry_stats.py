"""Recent quality-gate retries per model and level, kept in Redis so every worker learns from every other.

Each retry is one entry ("1" passed the check, "0" did not) at the head of a capped list per model and
the level of the draft it retried; the budget (worker.retry_budget) reads the counts of the latest
entries. A Redis error reads as "nothing on record" and a lost write is dropped: the figures steer how
hard the gate tries, they never fail a job.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

import redis

from worker.retry_budget import RetryCounts, RetryDecision, RetryPolicy, decide

if TYPE_CHECKING:
    from worker.gate import Draft
    from worker.settings import Settings

log = logging.getLogger(__name__)
RETRIES_KEY = "dq:quality:retries:{}:{}"
"""A list of recent retry outcomes for one model and draft level, newest first."""


class RetryStats:
    """The recent retries of each model and draft level, shared through Redis."""

    def __init__(self, client: redis.Redis, window: int) -> None:
        self.client = client
        self.window = window

    def counts(self, model: str, level: str) -> RetryCounts:
        """How many of the latest `window` retries of this model from this level there are, and how many passed."""
        try:
            raw: list[bytes | str] = self.client.lrange(RETRIES_KEY.format(model, level), 0, self.window - 1)
        except redis.RedisError as exc:
            log.warning("could not read the retry figures of %s at %s: %s", model, level, exc)
            return RetryCounts(0, 0)
        outcomes = [item.decode() if isinstance(item, bytes) else item for item in raw]
        return RetryCounts(len(outcomes), outcomes.count("1"))

    def record(self, model: str, level: str, passed: Sequence[bool]) -> None:
        """Add retry outcomes (oldest first) and drop those past the window."""
        if not passed:
            return
        key = RETRIES_KEY.format(model, level)
        try:
            pipe = self.client.pipeline()
            pipe.lpush(key, *("1" if ok else "0" for ok in passed))
            pipe.ltrim(key, 0, self.window - 1)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("could not record the retries of %s at %s: %s", model, level, exc)

    def clear(self, model: str, level: str) -> None:
        """Forget the figures of one model and level."""
        self.client.delete(RETRIES_KEY.format(model, level))


class AdaptiveBudget:
    """The gate's retry budget from the shared figures: retry where retries pay off, explore a share elsewhere."""

    def __init__(self, stats: RetryStats, policy: RetryPolicy, rng: random.Random | None = None) -> None:
        self.stats = stats
        self.policy = policy
        self.rng = rng or random.Random()

    @classmethod
    def from_settings(cls, client: redis.Redis, settings: Settings) -> AdaptiveBudget:
        """The budget the settings describe, on this Redis."""
        policy = RetryPolicy(
            settings.quality_retry_min_sample, settings.quality_retry_min_pass_rate, settings.quality_explore_share
        )
        return cls(RetryStats(client, settings.quality_retry_window), policy)

    def before_retry(self, draft: Draft) -> RetryDecision:
        """Retry this failing first draft or not, from the recent retries of its model at its level."""
        counts = self.stats.counts(draft.model, draft.level)
        return decide(counts, self.policy, self.rng.random(), f"{draft.model} at {draft.level}")

    def after_retries(self, draft: Draft, passed: Sequence[bool]) -> None:
        """Add how this draft's retries went to the shared figures."""
        self.stats.record(draft.model, draft.level, passed)
